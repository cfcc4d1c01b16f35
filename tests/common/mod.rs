#![allow(dead_code)]

pub mod cri_client;
pub mod expo_check;
pub mod fake_cri;
pub mod fuzz;
pub mod node;
pub mod oracle;
#[cfg(feature = "tls")]
pub mod pki;
