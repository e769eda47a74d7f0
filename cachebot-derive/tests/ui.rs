//! Compile-time behaviour of `#[derive(CacheBot)]`: the errors users see,
//! and a model using every attribute that must compile.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
