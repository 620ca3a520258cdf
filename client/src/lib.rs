//! flashgate clients.
