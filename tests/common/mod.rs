#![allow(dead_code)]

pub mod containerd;
pub mod cri_client;
pub mod cri_container;
pub mod decode;
pub mod expo_check;
pub mod fake_cri;
pub mod fuzz;
pub mod go_pair;
pub mod go_peer;
pub mod godiff;
pub mod node;
pub mod oracle;
pub mod peer;
#[cfg(feature = "tls")]
pub mod pki;
pub mod prom;
pub mod upstream_differences;
