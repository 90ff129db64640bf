//! Every row of the mutation table (`shared/decode_mutations.rs`, also run in WASM by
//! `tests/wasm-golden`) gives its typed decode error, natively.

mod mutations {
    include!("shared/decode_mutations.rs");
}

#[test]
fn v6_worked_example_mutations_give_their_errors() {
    let n = mutations::run(false).unwrap_or_else(|e| panic!("\n{e}"));
    assert!(n >= 30, "{n} rows");
}

#[test]
fn v5_worked_example_mutations_give_their_errors() {
    let n = mutations::run(true).unwrap_or_else(|e| panic!("\n{e}"));
    assert!(n >= 5, "{n} rows");
}

#[test]
fn the_v6_image_is_the_worked_example() {
    // The offsets of the v6 table are those of rafs-v6.md §18.
    let golden = include_bytes!("golden/worked-example.boot");
    assert_eq!(mutations::image(false).bootstrap, golden.as_slice());
}

#[test]
fn a_wrong_expectation_is_caught() {
    use mutations::{apply, decode_all, image, matches, Edit, Expect};
    use nydus_core::error::{ErrorKind, Rule};
    let img = image(false);
    let boot = apply(
        &img.bootstrap,
        Edit::Write {
            at: 0x404,
            bytes: &[1],
        },
    )
    .unwrap();
    let e = decode_all(boot, &img.blob).unwrap_err();
    assert!(matches(&Expect::Field("checksum", Rule::Zero), &e));
    assert!(matches(&Expect::AnyRule("checksum"), &e));
    assert!(!matches(&Expect::Field("checksum", Rule::NonZero), &e));
    assert!(!matches(&Expect::Field("inos", Rule::Zero), &e));
    assert!(!matches(
        &Expect::Inode(nydus_core::error::InodeProblem::ZeroNlink),
        &e
    ));
    assert!(!matches(
        &Expect::About(ErrorKind::BadField, "device slot"),
        &e
    ));
    assert_eq!(e.offset(), Some(0x400));
    assert!(apply(
        &img.bootstrap,
        Edit::Write {
            at: 0x400,
            bytes: &[0xe2]
        }
    )
    .is_err());
}
