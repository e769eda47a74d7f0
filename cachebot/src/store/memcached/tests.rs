//! Unit tests of the memcached store that need no server: key rendering, builder checks, the
//! generation parser, TTL rounding, wire format, error kinds. The store against real memcached
//! processes is tested in `tests/tests/memcached_store.rs` (crate `cachebot-tests`, run through
//! `scripts/services.sh`).

use std::net::TcpListener;

use super::*;

/// A port nothing listens on.
fn dead_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr.to_string()
}

#[test]
fn key_rendering_and_length_bound() {
    let store = MemcachedStore::connect([dead_addr()]).unwrap();
    assert_eq!(
        store.render_key(Key::entry(1)),
        "cb:e00000000000000000000000000000001"
    );
    assert_eq!(
        store.render_key(Key::generation(u128::MAX)),
        format!("cb:g{}", "f".repeat(32))
    );
    // The same text as padded lowercase hex, whatever the hash.
    for i in 0..1000u128 {
        let hash = i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) >> (i % 128);
        assert_eq!(
            store.render_key(Key::entry(hash)),
            format!("cb:e{hash:032x}")
        );
    }

    let longest = "~".repeat(MemcachedStore::MAX_PREFIX_LEN);
    let store = MemcachedStore::builder()
        .servers([dead_addr()])
        .prefix(longest.clone())
        .build()
        .unwrap();
    for key in [
        Key::entry(u128::MAX),
        Key::generation(u128::MAX),
        Key::entry(0),
    ] {
        let rendered = store.render_key(key);
        assert_eq!(rendered.len(), MemcachedStore::MAX_PREFIX_LEN + 33);
        assert!(
            rendered.len() <= MAX_KEY_LENGTH,
            "{} > {MAX_KEY_LENGTH}",
            rendered.len()
        );
        assert!(rendered.starts_with(&longest));
        assert!(rendered.bytes().all(|byte| byte.is_ascii_graphic()));
    }

    let bare = MemcachedStore::builder()
        .servers([dead_addr()])
        .prefix("")
        .build()
        .unwrap();
    assert_eq!(
        bare.render_key(Key::generation(0x10)),
        "g00000000000000000000000000000010"
    );
}

#[test]
fn builder_validation() {
    let server = dead_addr();
    let ok = || MemcachedStore::builder().servers([server.clone()]);
    assert!(ok().build().is_ok());
    assert!(MemcachedStore::builder().build().is_err());
    assert!(MemcachedStore::connect(Vec::<String>::new()).is_err());
    assert!(ok().prefix("~".repeat(64)).build().is_ok());
    for prefix in [
        "~".repeat(65),
        "a b".into(),
        "tab\t".into(),
        "nl\n".into(),
        "é:".into(),
        "\u{7f}".into(),
    ] {
        let error = ok().prefix(prefix.clone()).build().unwrap_err();
        assert!(error.to_string().contains("prefix"), "{prefix:?}: {error}");
    }
    // Unresolvable addresses (no DNS involved).
    for bad in ["127.0.0.1", "127.0.0.1:notaport", "", "127.0.0.1:99999"] {
        let error = MemcachedStore::connect([bad]).unwrap_err();
        assert!(error.to_string().contains("resolve"), "{bad:?}: {error}");
    }
    assert!(ok().io_timeout(Duration::ZERO).build().is_err());
    assert!(ok().connect_timeout(Duration::ZERO).build().is_err());
    assert!(ok().max_connections(0).build().is_err());
    assert!(ok().max_connections(4).max_idle(0).build().is_ok());
    assert!(MemcachedStore::connect([server.clone(), server.clone()]).is_err());

    let store = ok().max_value_size(1234).build().unwrap();
    assert_eq!(store.max_value_size(), 1234);
    assert_eq!(store.name(), "memcached");
    assert_eq!(ok().build().unwrap().max_value_size(), 1024 * 1024 - 1024);
    assert!(format!("{store:?}").contains(&server));
}

#[test]
fn generation_parsing() {
    assert_eq!(parse_generation(b"123"), Some(123));
    assert_eq!(parse_generation(b"18446744073709551615"), Some(u64::MAX));
    assert_eq!(parse_generation(b"7  "), Some(7));
    assert_eq!(parse_generation(b"007"), Some(7));
    for bad in [
        &b""[..],
        b"0",
        b"000",
        b" ",
        b"abc",
        b"12a",
        b"+5",
        b"-1",
        b" 5",
        b"1 2",
        b"18446744073709551616",
    ] {
        assert_eq!(
            parse_generation(bad),
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn ttl_rounding() {
    assert_eq!(entry_ttl_secs(Duration::ZERO), 1);
    assert_eq!(entry_ttl_secs(Duration::from_millis(1)), 1);
    assert_eq!(entry_ttl_secs(Duration::from_millis(1500)), 2);
    assert_eq!(entry_ttl_secs(Duration::from_secs(300)), 300);
    assert_eq!(
        entry_ttl_secs(Duration::from_secs(40 * 24 * 3600)),
        MAX_ENTRY_TTL_SECS
    );
    assert_eq!(entry_ttl_secs(Duration::MAX), MAX_ENTRY_TTL_SECS);
}

#[test]
fn vivify_wire_format_puts_never_expire_last() {
    // The server applies N then T in wire order; T0 must come after N1
    // for a created generation to never expire.
    let command = memcache::exp::Operation::prepare(&vivify_op("cb:gk", 42)).unwrap();
    assert_eq!(
        command.encode().unwrap(),
        b"ma cb:gk v D0 N1 J42 T0\r\n".to_vec()
    );
}

#[test]
fn error_kinds() {
    let io = |kind| ClientError::Io(io::Error::from(kind));
    assert_eq!(
        error_kind(&ClientError::Timeout { key: b"k".to_vec() }),
        StoreErrorKind::Timeout
    );
    assert_eq!(
        error_kind(&io(io::ErrorKind::TimedOut)),
        StoreErrorKind::Timeout
    );
    assert_eq!(
        error_kind(&io(io::ErrorKind::ConnectionRefused)),
        StoreErrorKind::Unavailable
    );
    assert_eq!(
        error_kind(&io(io::ErrorKind::UnexpectedEof)),
        StoreErrorKind::Unavailable
    );
    let ambiguous = ClientError::Ambiguous {
        key: b"k".to_vec(),
        source: Box::new(ClientError::Timeout { key: b"k".to_vec() }),
    };
    assert_eq!(error_kind(&ambiguous), StoreErrorKind::Timeout);
    assert_eq!(
        error_kind(&ClientError::Protocol("x".into())),
        StoreErrorKind::Protocol
    );
    assert_eq!(
        error_kind(&ClientError::Server("out of memory".into())),
        StoreErrorKind::Protocol
    );
    assert_eq!(
        error_kind(&ClientError::Server("object too large for cache".into())),
        StoreErrorKind::Rejected
    );
    assert_eq!(
        error_kind(&ClientError::Rejected("bad".into())),
        StoreErrorKind::Rejected
    );
    assert_eq!(
        error_kind(&ClientError::Usage("key too long")),
        StoreErrorKind::Rejected
    );
    let rejected = ClientError::Ambiguous {
        key: b"k".to_vec(),
        source: Box::new(ClientError::Rejected("non-numeric".into())),
    };
    assert!(is_client_error(&rejected));
    assert!(!is_client_error(&ambiguous));
}
