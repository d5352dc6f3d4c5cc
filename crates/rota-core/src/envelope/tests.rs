//! The envelope's wire format, in both codecs, and what it refuses.

use super::*;

fn request(codec: Codec) -> Request {
    Request {
        id: CorrelationId::new(),
        service: "billing".into(),
        method: "invoice".into(),
        reply_to: Some("rota:{c:1}:r".into()),
        deadline: Some(Deadline::from_unix_ms(1_767_225_600_000)),
        attempt: 2,
        headers: [("traceparent".to_string(), "00-abc".to_string())].into(),
        codec,
        body: codec
            .encode(&serde_json::json!({"tenant": "t1", "month": 11}))
            .unwrap()
            .into(),
    }
}

#[test]
fn requests_round_trip_in_both_codecs() {
    for codec in [Codec::Json, Codec::MessagePack] {
        let req = request(codec);
        let back = Request::decode(&req.encode().unwrap()).unwrap();
        assert_eq!(back, req);
    }
}

#[test]
fn a_json_request_embeds_its_body_as_json() {
    let bytes = request(Codec::Json).encode().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["body"]["month"], 11);
    assert_eq!(v["v"], 1);
    assert_eq!(v["deadline_ms"], 1_767_225_600_000u64);
}

#[test]
fn replies_round_trip_in_both_codecs() {
    for codec in [Codec::Json, Codec::MessagePack] {
        for outcome in [
            Outcome::Ok(codec.encode(&42).unwrap().into()),
            Outcome::Ok(codec.encode(&()).unwrap().into()),
            Outcome::Ok(codec.encode(&None::<u8>).unwrap().into()),
            Outcome::Err(codec.encode("no such tenant").unwrap().into()),
            Outcome::Fault(Fault::new(FaultKind::UnknownMethod, "no method x")),
        ] {
            let reply = Reply {
                id: CorrelationId::new(),
                codec,
                outcome,
            };
            assert_eq!(Reply::decode(&reply.encode().unwrap()).unwrap(), reply);
        }
    }
}

#[test]
fn a_hand_written_request_with_defaults_decodes() {
    let text = br#"{"id":"01930000-0000-7000-8000-000000000000","service":"s","method":"m"}"#;
    let req = Request::decode(text).unwrap();
    assert_eq!(req.body.as_ref(), b"{}");
    assert_eq!(req.reply_to, None);
    assert_eq!(req.deadline, None);
}

#[test]
fn garbage_and_wrong_versions_are_named() {
    assert_eq!(
        Request::decode(b"\x00garbage"),
        Err(EnvelopeError::UnknownFormat)
    );
    let err = Request::decode(
        br#"{"v":9,"id":"01930000-0000-7000-8000-000000000000","service":"s","method":"m"}"#,
    )
    .unwrap_err();
    assert_eq!(err, EnvelopeError::Version(9));
    let err = Request::decode(br#"{"id":"nope","service":"s","method":"m"}"#).unwrap_err();
    assert!(err.to_string().contains("not a UUID"), "{err}");
    let err = Reply::decode(br#"{"id":"01930000-0000-7000-8000-000000000000","outcome":"maybe"}"#)
        .unwrap_err();
    assert!(err.to_string().contains("unknown outcome"), "{err}");
}

/// `text`, as JSON or re-encoded in MessagePack (a JSON `body` object
/// becomes a `bin` holding its own MessagePack encoding).
fn in_codec(codec: Codec, text: &str) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Field {
        Plain(serde_json::Value),
        Bin(serde_bytes::ByteBuf),
    }
    let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text).unwrap();
    match codec {
        Codec::Json => text.as_bytes().to_vec(),
        Codec::MessagePack => {
            let map: BTreeMap<String, Field> = v
                .into_iter()
                .map(|(k, v)| {
                    let f = if k == "body" && v.is_object() {
                        Field::Bin(serde_bytes::ByteBuf::from(
                            rmp_serde::to_vec_named(&v).unwrap(),
                        ))
                    } else {
                        Field::Plain(v)
                    };
                    (k, f)
                })
                .collect();
            rmp_serde::to_vec_named(&map).unwrap()
        }
    }
}

const ID: &str = "01930000-0000-7000-8000-000000000000";

#[test]
fn a_null_body_means_no_arguments_in_both_codecs() {
    for codec in [Codec::Json, Codec::MessagePack] {
        let text = format!(r#"{{"id":"{ID}","service":"s","method":"m","body":null}}"#);
        let req = Request::decode(&in_codec(codec, &text)).unwrap();
        let empty: serde_json::Map<String, serde_json::Value> = codec.decode(&req.body).unwrap();
        assert!(empty.is_empty(), "{codec}: {:?}", req.body);
        // Null optional fields mean what their absence means.
        let text = format!(
            r#"{{"id":"{ID}","service":"s","method":"m","reply_to":null,"deadline_ms":null,"attempt":null,"headers":null}}"#
        );
        let req = Request::decode(&in_codec(codec, &text)).unwrap();
        assert_eq!((req.attempt, req.headers.len()), (0, 0), "{codec}");
    }
}

#[test]
fn malformed_fields_are_named_in_both_codecs() {
    let cases = [
        (r#""deadline_ms":1.5"#, "`deadline_ms`"),
        (r#""attempt":"one""#, "`attempt`"),
        (r#""headers":{"traceparent":7}"#, "`headers`"),
        (r#""reply_to":42"#, "`reply_to`"),
    ];
    for codec in [Codec::Json, Codec::MessagePack] {
        for (field, name) in cases {
            let text = format!(r#"{{"id":"{ID}","service":"s","method":"m",{field}}}"#);
            let err = Request::decode(&in_codec(codec, &text)).unwrap_err();
            assert!(err.to_string().contains(name), "{codec} {field}: {err}");
        }
    }
}

#[test]
fn the_return_address_of_an_unreadable_request_is_read_when_it_can_be() {
    for codec in [Codec::Json, Codec::MessagePack] {
        let readable = [
            r#""deadline_ms":1.5"#,
            r#""v":2"#,
            r#""headers":[1,2]"#,
            r#""service":7"#,
        ];
        for field in readable {
            let text =
                format!(r#"{{"id":"{ID}","method":"m","reply_to":"rota:{{c:1}}:r",{field}}}"#);
            let bytes = in_codec(codec, &text);
            assert!(Request::decode(&bytes).is_err(), "{codec} {field}");
            let back = Request::return_address(&bytes).expect("readable");
            assert_eq!(back.id.to_string(), ID);
            assert_eq!(back.reply_to, "rota:{c:1}:r");
            assert_eq!(back.codec, codec);
        }
        // No trustworthy way back: nobody to answer.
        for text in [
            r#"{"id":"nope","reply_to":"r"}"#.to_owned(),
            format!(r#"{{"id":"{ID}","reply_to":42}}"#),
            format!(r#"{{"id":"{ID}"}}"#),
            format!(r#"{{"id":"{ID}","reply_to":null}}"#),
        ] {
            assert_eq!(
                Request::return_address(&in_codec(codec, &text)),
                None,
                "{text}"
            );
        }
    }
    assert_eq!(Request::return_address(b"hello"), None);
}

#[test]
fn unknown_fault_kinds_from_newer_servers_still_decode() {
    let text = br#"{"id":"01930000-0000-7000-8000-000000000000","outcome":"fault","fault":{"kind":"quota","message":"m"}}"#;
    let reply = Reply::decode(text).unwrap();
    assert!(matches!(
        reply.outcome,
        Outcome::Fault(Fault {
            kind: FaultKind::Unknown,
            ..
        })
    ));
}
