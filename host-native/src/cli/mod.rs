//! The command lines: the clap surfaces, their options turned into the libraries' typed
//! plans and options, and all printing and exit codes.

pub mod image;
pub mod nydusd;
pub mod nydusify;
