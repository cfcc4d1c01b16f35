#![allow(dead_code)]

pub mod containerd;
pub mod cri_client;
pub mod cri_container;
pub mod expo_check;
pub mod fake_cri;
pub mod fuzz;
pub mod node;
pub mod oracle;
pub mod peer;
#[cfg(feature = "tls")]
pub mod pki;
pub mod prom;
