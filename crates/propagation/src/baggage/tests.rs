use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;

use super::*;

fn map(fields: &[&str]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for value in fields {
        map.append(HEADER, HeaderValue::from_str(value).expect("test header value"));
    }
    map
}

fn pairs(baggage: &Baggage) -> Vec<(&str, &str)> {
    baggage.iter().map(|m| (m.key(), m.value())).collect()
}

#[test]
fn specification_examples() {
    let parsed = Baggage::parse("userId=alice,serverNode=DF%2028,isProduction=false");
    assert_eq!(parsed.dropped, Dropped::default());
    let baggage = parsed.baggage;
    assert_eq!(
        pairs(&baggage),
        [("userId", "alice"), ("serverNode", "DF 28"), ("isProduction", "false")]
    );
    assert_eq!(baggage.to_string(), "userId=alice,serverNode=DF%2028,isProduction=false");

    let baggage = Baggage::parse("userId=Am%C3%A9lie").baggage;
    assert_eq!(baggage.get("userId"), Some("Amélie"));
    assert_eq!(baggage.to_string(), "userId=Am%C3%A9lie");

    let baggage =
        Baggage::extract(&map(&["userId =   alice", "serverNode = DF%2028, isProduction = false"]))
            .baggage;
    assert_eq!(
        pairs(&baggage),
        [("userId", "alice"), ("serverNode", "DF 28"), ("isProduction", "false")]
    );

    let header =
        "key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue";
    let baggage = Baggage::parse(header).baggage;
    assert_eq!(pairs(&baggage), [("key1", "value1"), ("key2", "value2"), ("key3", "value3")]);
    let key1 = baggage.member("key1").expect("present");
    assert_eq!(
        key1.properties(),
        [
            Property { key: "property1".into(), value: None },
            Property { key: "property2".into(), value: None }
        ]
    );
    assert_eq!(
        baggage.to_string(),
        "key1=value1;property1;property2,key2=value2,key3=value3;propertyKey=propertyValue"
    );
}

#[test]
fn values_and_escapes() {
    let cases: &[(&str, &str, &str)] = &[
        // (header, decoded value of k, re-encoded header)
        ("k=a=b==", "a=b==", "k=a=b=="),
        ("k=", "", "k="),
        ("k = \t", "", "k="),
        ("k=%FF", "\u{FFFD}", "k=%EF%BF%BD"),
        ("k=100%", "100%", "k=100%25"),
        ("k=%4", "%4", "k=%254"),
        ("k=%zz", "%zz", "k=%25zz"),
        ("k=%41%62", "Ab", "k=Ab"),
        ("k=%2c%3B%20%22%5C", ",; \"\\", "k=%2C%3B%20%22%5C"),
        ("k=v;p= x ;q", "v", "k=v;p=x;q"),
        ("k=v;;p", "v", "k=v;p"),
    ];
    for (header, value, formatted) in cases {
        let parsed = Baggage::parse(header);
        assert_eq!(parsed.dropped, Dropped::default(), "{header}");
        assert_eq!(parsed.baggage.get("k"), Some(*value), "{header}");
        assert_eq!(parsed.baggage.to_string(), *formatted, "{header}");
    }
}

#[test]
fn invalid_members_are_dropped_and_the_rest_kept() {
    let header = concat!(
        "good=1,bad key=2,=3,nokey,q=\"x\",b=a\\b,sp=a b,",
        "p=1;bad prop,p2=1;=v,p3=1;k=\"v\",tab=a\tb,ok=4, ,,"
    );
    let parsed = Baggage::parse(header);
    assert_eq!(pairs(&parsed.baggage), [("good", "1"), ("ok", "4")]);
    assert_eq!(parsed.dropped, Dropped { invalid: 10, over_limit: 0 });
    // Non-ASCII bytes in a header field.
    let parsed = Baggage::parse_fields([&b"a=caf\xc3\xa9,b=1"[..]]);
    assert_eq!(pairs(&parsed.baggage), [("b", "1")]);
    assert_eq!(parsed.dropped.invalid, 1);
}

#[test]
fn duplicate_keys_are_kept_in_order() {
    let baggage = Baggage::parse("a=1,b=2,a=3").baggage;
    assert_eq!(pairs(&baggage), [("a", "1"), ("b", "2"), ("a", "3")]);
    assert_eq!(baggage.get("a"), Some("1"));
}

#[test]
fn member_limit_is_64() {
    let header: Vec<String> = (0..70).map(|i| format!("k{i}=v")).collect();
    let parsed = Baggage::parse(&header.join(","));
    assert_eq!(parsed.baggage.len(), MAX_MEMBERS);
    assert_eq!(parsed.dropped, Dropped { invalid: 0, over_limit: 6 });
    assert_eq!(parsed.baggage.get("k63"), Some("v"));
    assert_eq!(parsed.baggage.get("k64"), None);
    // The limit applies across header fields.
    let fields: Vec<String> = (0..65).map(|i| format!("k{i}=v")).collect();
    let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    let parsed = Baggage::extract(&map(&fields));
    assert_eq!(parsed.baggage.len(), MAX_MEMBERS);
    assert_eq!(parsed.dropped.over_limit, 1);
}

#[test]
fn byte_limit_is_8192_and_members_are_never_cut() {
    // Two members of 4094 bytes, two commas and "c=": exactly 8192 bytes.
    let big = |key: &str| format!("{key}={}", "v".repeat(4094 - key.len() - 1));
    let exact = format!("{},{},c=", big("a"), big("b"));
    assert_eq!(exact.len(), MAX_BYTES);
    let parsed = Baggage::parse(&exact);
    assert_eq!(parsed.dropped, Dropped::default());
    assert_eq!(parsed.baggage.header_len(), MAX_BYTES);

    let over = format!("{},{},cc=", big("a"), big("b"));
    let parsed = Baggage::parse(&over);
    assert_eq!(parsed.baggage.len(), 2);
    assert_eq!(parsed.dropped, Dropped { invalid: 0, over_limit: 1 });

    // A member too big on its own is dropped; later small ones still fit.
    let huge = format!("small=1,huge={},tail=2", "v".repeat(9000));
    let parsed = Baggage::parse(&huge);
    assert_eq!(pairs(&parsed.baggage), [("small", "1"), ("tail", "2")]);
    assert_eq!(parsed.dropped.over_limit, 1);

    // The limit counts the encoded form.
    let escaped = format!("e={}", "%FF".repeat(1000)); // 3002 bytes, encodes to 9002
    let parsed = Baggage::parse(&escaped);
    assert!(parsed.baggage.is_empty());
    assert_eq!(parsed.dropped.over_limit, 1);
}

#[test]
fn pass_through_keeps_the_bytes() {
    let headers = map(&["a=%41 ; p = 1 , bad key=1", " b=DF%2028", "c=%FF"]);
    let (value, dropped) = pass_through(&headers);
    assert_eq!(value.expect("members left"), "a=%41 ; p = 1,b=DF%2028,c=%FF");
    assert_eq!(dropped, Dropped { invalid: 1, over_limit: 0 });
    let (value, dropped) = pass_through(&map(&["nokey", ""]));
    assert_eq!(value, None);
    assert_eq!(dropped.invalid, 1);
    let many: Vec<String> = (0..65).map(|i| format!("k{i}=v")).collect();
    let (value, dropped) = pass_through(&map(&[&many.join(",")]));
    assert_eq!(value.expect("members left").as_bytes().iter().filter(|&&b| b == b',').count(), 63);
    assert_eq!(dropped.over_limit, 1);
}

#[test]
fn insert_and_remove() {
    let mut baggage = Baggage::parse("a=1,b=2,a=3").baggage;
    let member = Member::new("a", "x y").and_then(|m| m.with_property("p", Some("1")));
    baggage.insert(member.expect("valid")).expect("fits");
    assert_eq!(baggage.to_string(), "a=x%20y;p=1,b=2");
    baggage.insert(Member::new("c", "3").expect("valid")).expect("fits");
    assert_eq!(baggage.to_string(), "a=x%20y;p=1,b=2,c=3");
    assert_eq!(baggage.remove("b"), 1);
    assert_eq!(baggage.remove("b"), 0);
    assert_eq!(Member::new("bad key", "1"), Err(BaggageError::InvalidKey));
    let bad_property = Member::new("k", "1").and_then(|m| m.with_property("p", Some("a b")));
    assert_eq!(bad_property, Err(BaggageError::InvalidProperty));

    let huge = Member::new("h", &"v".repeat(MAX_BYTES)).expect("valid");
    assert_eq!(baggage.insert(huge), Err(BaggageError::OverLimit));
    assert_eq!(baggage.to_string(), "a=x%20y;p=1,c=3");
    let mut full = Baggage::new();
    for i in 0..MAX_MEMBERS {
        full.insert(Member::new(&format!("k{i}"), "v").expect("valid")).expect("fits");
    }
    assert_eq!(
        full.insert(Member::new("one_more", "v").expect("valid")),
        Err(BaggageError::OverLimit)
    );
    full.insert(Member::new("k0", "replaced").expect("valid")).expect("a replacement fits");
}

#[test]
fn inject_writes_or_removes_the_header() {
    let mut headers = map(&["old=1", "older=2"]);
    let baggage = Baggage::parse("a=1").baggage;
    baggage.inject(&mut headers);
    assert_eq!(headers.get_all(&HEADER).iter().collect::<Vec<_>>(), ["a=1"]);
    Baggage::new().inject(&mut headers);
    assert!(headers.get(&HEADER).is_none());
}

fn members() -> impl Strategy<Value = Baggage> {
    let key = "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}";
    let property = (key, proptest::option::of("[!#-+\\--:<-\\[\\]-~]{0,8}"));
    let member = (key, any::<String>(), proptest::collection::vec(property, 0..3));
    proptest::collection::vec(member, 0..12).prop_map(|members| {
        let mut baggage = Baggage::new();
        for (key, value, properties) in members {
            let mut member = Member::new(&key, &value).expect("token key");
            for (key, value) in properties {
                member = member.with_property(&key, value.as_deref()).expect("valid property");
            }
            // Fails only past the limits, which small members do not reach.
            baggage.insert(member).expect("within limits");
        }
        baggage
    })
}

proptest! {
    #[test]
    fn parse_inverts_format(baggage in members()) {
        let parsed = Baggage::parse(&baggage.to_string());
        prop_assert_eq!(parsed.dropped, Dropped::default());
        prop_assert_eq!(&parsed.baggage, &baggage);
        let mut headers = HeaderMap::new();
        baggage.inject(&mut headers);
        prop_assert_eq!(Baggage::extract(&headers).baggage, baggage);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        crate::fuzz::baggage(&bytes);
    }

    #[test]
    fn near_valid_strings_never_panic(text in "[a-z=;,% \t0-9A-F\"\\\\]{0,200}") {
        crate::fuzz::baggage(text.as_bytes());
    }
}
