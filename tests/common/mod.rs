#![allow(dead_code)]

pub mod expo_check;
pub mod fuzz;
pub mod node;
pub mod oracle;
