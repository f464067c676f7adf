//! TUF metadata for the RSTUF worker: the model, canonical JSON, storage JSON, keys, signatures,
//! threshold verification and delegation resolution (TAP 15 hash bins and path patterns).
//!
//! This crate does no I/O and needs no async runtime: bytes and structs go in, bytes and
//! structs come out. Everything that signs or is signed must be byte-compatible with
//! python-tuf 7 and securesystemslib, and the tests prove it against those libraries.

#![warn(missing_docs)]

pub mod audit;
pub mod cjson;
pub mod direct;
pub mod keys;
pub mod pattern;
pub mod pyjson;
pub mod resign;
pub mod schema;
pub mod succinct;
pub mod verify;
