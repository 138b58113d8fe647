//! Fuzz target: `vcguard::vsphere::fuzz_entry::soap_classifier` on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vcguard::vsphere::fuzz_entry::soap_classifier(data);
});
