//! Faults that tests inject into a debug build of a node: `OTTR_FAILPOINTS=name,name` makes
//! the named points panic. Release builds compile every point to nothing, so no environment
//! can make a production node panic.

/// Panics with `name` when the environment lists it (debug builds only).
#[cfg(debug_assertions)]
pub fn panic_if_set(name: &str) {
    if std::env::var("OTTR_FAILPOINTS")
        .is_ok_and(|names| names.split(',').any(|listed| listed.trim() == name))
    {
        panic!("failpoint {name}");
    }
}

/// Nothing: release builds have no failpoints.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn panic_if_set(_name: &str) {}
