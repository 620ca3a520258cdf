//! flashgate-loadtest.
