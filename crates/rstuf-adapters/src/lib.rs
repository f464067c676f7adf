//! Adapters between the RSTUF worker and the services it shares with the RSTUF API: Redis
//! (repository settings, locks), SQL, metadata storage and online-key signers.
//!
//! Each module maps one service's wire format to plain values; nothing here decides what a task
//! does.

#![warn(missing_docs)]

/// `Debug` showing only the named fields, never connections, credentials or keys.
macro_rules! debug_fields {
    ($type:ident { $($field:ident),* }) => {
        impl std::fmt::Debug for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($type))
                    $(.field(stringify!($field), &self.$field))*
                    .finish_non_exhaustive()
            }
        }
    };
}

pub mod amqp_broker;
pub mod coalesce;
pub mod cpu;
pub mod dynaconf;
mod error;
pub mod faults;
pub mod key_dir;
pub mod local_store;
pub mod postgres;
pub mod redis_broker;
pub mod redis_lock;
pub mod redis_schedule;
pub mod redis_settings;
pub mod signers;
