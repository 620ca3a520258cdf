// Drives the operator console in real headless Chromium, as an operator
// would: sign in, create a SKU through the page, watch a sale the script
// drives sell it out (stock to 0, the sold_out alert, the charts moving),
// change its settings and restock it, read the report, hand over from the
// primary's console; then, on the standby of the pair, promote it through
// the page (a switchover done entirely from the consoles). Exits 0 when every step was seen, 1 (with a screenshot of the
// moment) otherwise. tests/console_browser.rs starts the nodes and runs it.
//
// Environment: FLASHGATE_PRIMARY_URL, FLASHGATE_STANDBY_URL, FLASHGATE_TOKEN,
// FLASHGATE_ARTIFACTS (screenshot directory), CHROMIUM (executable path).

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const PRIMARY = required("FLASHGATE_PRIMARY_URL");
const STANDBY = required("FLASHGATE_STANDBY_URL");
const TOKEN = required("FLASHGATE_TOKEN");
const ARTIFACTS = required("FLASHGATE_ARTIFACTS");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SKU = "LAUNCH-1";
const STOCK = 24;
const RESTOCK = 6;
const STEP_TIMEOUT_MS = 20000;
const ORDERS_MAX = 400; // bounds the sale whatever happens

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return value;
}

function step(what) {
  console.log(`console.mjs: ${what}`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function order(customer) {
  const response = await fetch(PRIMARY + "/v1/orders", {
    method: "POST",
    headers: { Authorization: "Bearer " + TOKEN, "Content-Type": "application/json" },
    body: JSON.stringify({ sku: SKU, quantity: 1, customer_id: customer }),
  });
  const body = await response.json().catch(() => ({}));
  return { status: response.status, code: body.code };
}

// The sale: a few orders at a time with short pauses, so the page's
// once-a-second samples see a rate over several seconds; then refusals
// (sold_out) for a while after the last unit.
async function driveSale() {
  let sent = 0, created = 0, soldOut = 0;
  while (sent < ORDERS_MAX && soldOut < 30) {
    const burst = [];
    for (let i = 0; i < 3 && sent < ORDERS_MAX; i++, sent++) burst.push(order("buyer-" + sent));
    for (const answer of await Promise.all(burst)) {
      if (answer.status === 201) created++;
      else if (answer.code === "sold_out") soldOut++;
      else throw new Error(`an order was answered ${answer.status} ${answer.code}`);
    }
    await sleep(150);
  }
  return { sent, created, soldOut };
}

// The y values of a chart's series (SVG coordinates; smaller is higher).
async function seriesYs(page, chart, series) {
  return page.$eval(`#${chart} polyline[data-series="${series}"]`, (line) =>
    line.getAttribute("points").split(" ").filter(Boolean).map((pair) => Number(pair.split(",")[1])));
}

async function signIn(page, url) {
  await page.goto(url + "/console");
  await page.waitForSelector("#login:not([hidden])");
  await page.fill("#token-input", TOKEN);
  await page.click("#token-submit");
  await page.waitForSelector("#link.live");
}

async function confirmDialog(page, expectStatus) {
  await page.click("#confirm-go");
  await page.waitForSelector("#confirm-answer-wrap:not([hidden])");
  const status = (await page.textContent("#confirm-status")).trim();
  const answer = await page.textContent("#confirm-answer");
  if (status !== String(expectStatus)) throw new Error(`the action was answered ${status}, expected ${expectStatus}: ${answer}`);
  return answer;
}

mkdirSync(ARTIFACTS, { recursive: true });
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu"],
});
let page;
const shot = (name) => page.screenshot({ path: join(ARTIFACTS, name), fullPage: true });
try {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.on("pageerror", (error) => console.error("page error:", error.message));

  step("sign in on the primary");
  await signIn(page, PRIMARY);
  await page.waitForSelector('#role[data-role="primary"]');

  step("create a SKU through the page");
  await page.click("#new-sku");
  await page.fill("#field-sku", SKU);
  await page.fill("#field-stock", String(STOCK));
  await page.fill("#field-low_stock_threshold", "6");
  await page.fill("#field-per_customer_limit", "1");
  await shot("01-create-sku-dialog.png");
  const created = await confirmDialog(page, 201);
  if (!created.includes(`"sku": "${SKU}"`)) throw new Error(`the answer does not name the SKU: ${created}`);
  await page.click("#confirm-cancel");
  await page.waitForSelector(`#sku-${SKU}[data-available="${STOCK}"]`);

  step("drive the sale until it sells out");
  const sale = await driveSale();
  step(`sale: ${JSON.stringify(sale)}`);
  if (sale.created !== STOCK) throw new Error(`created ${sale.created} orders of ${STOCK} units`);

  step("see stock 0, the sold_out alert, the charts move");
  await page.waitForSelector(`#sku-${SKU}[data-available="0"]`);
  await page.waitForSelector(`#sku-${SKU} .sold-out-at`);
  await page.waitForSelector(`.alert.active[data-kind="sold_out"][data-sku="${SKU}"]`);
  await page.waitForSelector(`.alert[data-kind="low_stock"][data-sku="${SKU}"]`);
  const created_ys = await seriesYs(page, "chart-orders", "created");
  const refused_ys = await seriesYs(page, "chart-orders", "sold_out");
  if (new Set(created_ys).size < 2) throw new Error(`the created series did not move: ${created_ys}`);
  if (new Set(refused_ys).size < 2) throw new Error(`the sold_out series did not move: ${refused_ys}`);
  const p99 = await seriesYs(page, "chart-latency", "p99");
  if (p99.length < 1) throw new Error("no latency sample was drawn");
  await shot("02-sold-out.png");

  step("change the SKU's settings through the page");
  await page.click(`#sku-${SKU} button:has-text("Settings")`);
  await page.waitForSelector("#field-low_stock_threshold");
  await page.fill("#field-low_stock_threshold", "3");
  await confirmDialog(page, 200);
  await page.click("#confirm-cancel");
  await page.waitForSelector(`#sku-${SKU} .sku-bottom:has-text("low-stock at 3")`);

  step("restock it through the page");
  await page.click(`#sku-${SKU} button:has-text("Restock")`);
  await page.fill("#field-quantity", String(RESTOCK));
  await shot("03-restock-dialog.png");
  await confirmDialog(page, 200);
  await page.click("#confirm-cancel");
  await page.waitForSelector(`#sku-${SKU}[data-available="${RESTOCK}"]`);
  await page.waitForSelector(`.alert[data-kind="restocked"][data-sku="${SKU}"]`);
  await page.waitForSelector(`.alert.resolved[data-kind="sold_out"][data-sku="${SKU}"]`);

  step("read the report");
  await page.click('.tabs button[data-tab="report"]');
  await page.waitForSelector(`#report-table tr[data-sku="${SKU}"]`);
  await shot("04-report.png");
  await page.click('.tabs button[data-tab="live"]');

  step("the same page on a phone");
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300); // one layout pass; the assertion is the picture
  await shot("05-phone.png");
  await page.setViewportSize({ width: 1440, height: 900 });

  step("hand over from the primary's console");
  await page.click("#handover");
  await confirmDialog(page, 200);
  await shot("06-handover-answer.png");
  await page.click("#confirm-cancel");
  await page.waitForSelector('#cluster dd:has-text("in progress: writes stopped")');

  step("the standby's console: a standby, linking to the primary; promote it");
  const standbyContext = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  page = await standbyContext.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  await signIn(page, STANDBY);
  await page.waitForSelector('#role[data-role="standby"]');
  await page.waitForSelector("#standby-banner:not([hidden])");
  await page.waitForSelector(`#sku-${SKU}[data-available="${RESTOCK}"]`);
  await shot("07-standby.png");
  await page.click("#promote");
  const promoted = await confirmDialog(page, 200);
  await shot("08-promote-answer.png");
  await page.click("#confirm-cancel");
  await page.waitForSelector('#role[data-role="primary"]');
  await page.waitForSelector("#standby-banner", { state: "hidden" });
  await shot("09-promoted.png");
  step(`promoted: ${promoted.replace(/\s+/g, " ")}`);
  console.log("console.mjs: ok");
  await browser.close();
  process.exit(0);
} catch (error) {
  console.error("console.mjs: FAILED:", error && error.stack ? error.stack : error);
  try { if (page) await shot("failure.png"); } catch (_) { /* the page is gone */ }
  await browser.close();
  process.exit(1);
}
