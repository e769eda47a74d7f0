//! Compile-time behaviour of the write API: every documented call shape
//! compiles, and a call that does not name the model fails at once with
//! "type annotations needed" (it used to risk a long trait search).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
