//! Fuzz target: `vcguard::vsphere::fuzz_entry::json_body` on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vcguard::vsphere::fuzz_entry::json_body(data);
});
