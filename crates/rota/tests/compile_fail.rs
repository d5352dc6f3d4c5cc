//! What `#[rota::contract]` must refuse, and how it says so: each file under
//! `tests/ui/` fails to compile with the errors in its `.stderr` next to it.
//! After changing a message, regenerate them with
//! `TRYBUILD=overwrite cargo test -p rota --test compile_fail` and read the diff.

#[test]
fn contract_errors() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
