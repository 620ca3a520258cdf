//! The config file: TOML text over the defaults, checked as `flashgate serve
//! --config` checks it (`Config::from_toml_str`, the file layer of
//! `Config::load`).
//!
//! Must hold: no panic; a refusal is `ConfigError::Invalid` with a message; an
//! accepted config yields its derived settings (node, cluster, body limits,
//! stop bound) without panicking, and written back as TOML it is accepted
//! again as the same config.
#![no_main]

use flashgate_gateway::{Config, ConfigError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml_str(text) {
        Ok(config) => {
            let _ = config.node_config();
            let _ = config.cluster_config();
            let _ = config.body_limits();
            let _ = config.stop_bound();
            let _ = config.replicated();
            if let Ok(written) = toml::to_string(&config) {
                match Config::from_toml_str(&written) {
                    Ok(again) => assert_eq!(
                        format!("{again:?}"),
                        format!("{config:?}"),
                        "written back:\n{written}"
                    ),
                    Err(error) => panic!("accepted, refused written back: {error}\n{written}"),
                }
            }
        }
        Err(ConfigError::Invalid(reason)) => assert!(!reason.is_empty()),
        Err(other) => panic!("a refusal other than Invalid: {other:?}"),
    }
});
