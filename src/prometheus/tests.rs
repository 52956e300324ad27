use super::*;

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn matrix(json: &str) -> Vec<MatrixSeries> {
    match interpret(200, json.as_bytes()) {
        Ok(ResultData::Matrix(series)) => series,
        Ok(other) => panic!("{}", unexpected_result("matrix", &other)),
        Err(err) => panic!("{err}"),
    }
}

fn merge(chunks: &[&str]) -> Vec<SeriesPoints> {
    let mut merger = SeriesMerger::default();
    for chunk in chunks {
        merger.add(matrix(chunk)).unwrap();
    }
    merger.finish()
}

#[test]
fn decodes_matrix_with_special_values_and_rounds_timestamps() {
    let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
        {"metric":{"job":"checkout","__name__":"up"},
         "values":[[1435781430.781,"1"],[1435781445.781,"NaN"],[1435781460.781,"+Inf"],
                   [1435781475.781,"-Inf"],[1435781490,"1e3"]]}]}}"#;
    let series = merge(&[body]);
    assert_eq!(series.len(), 1);
    // Sorted by label name regardless of the order sent.
    assert_eq!(series[0].labels, labels(&[("__name__", "up"), ("job", "checkout")]));
    let points = &series[0].points;
    let times: Vec<Millis> = points.iter().map(|(at, _)| *at).collect();
    assert_eq!(times, [1435781430781, 1435781445781, 1435781460781, 1435781475781, 1435781490000]);
    assert_eq!(points[0].1, 1.0);
    assert!(points[1].1.is_nan());
    assert_eq!(points[2].1, f64::INFINITY);
    assert_eq!(points[3].1, f64::NEG_INFINITY);
    assert_eq!(points[4].1, 1000.0);
}

#[test]
fn decodes_vector_with_one_point_per_series() {
    let body = r#"{"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"__name__":"http_requests_total","code":"200"},"value":[1767225600.5,"42"]},
        {"metric":{"__name__":"hist"},"histogram":[1767225600.5,{"count":"1"}]}]},
        "warnings":["partial data"]}"#;
    let series = instant_series(interpret(200, body.as_bytes()).unwrap()).unwrap();
    assert_eq!(
        series,
        [SeriesPoints {
            labels: labels(&[("__name__", "http_requests_total"), ("code", "200")]),
            points: vec![(1767225600500, 42.0)],
        }]
    );
}

#[test]
fn rejects_unexpected_result_type_and_bad_values() {
    let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}"#;
    let err = instant_series(interpret(200, scalar.as_bytes()).unwrap()).unwrap_err();
    assert!(matches!(err, PromError::Decode(_)), "{err:?}");

    let bad_value = r#"{"status":"success","data":{"resultType":"matrix","result":[
        {"metric":{},"values":[[1,"twelve"]]}]}}"#;
    let err = SeriesMerger::default().add(matrix(bad_value)).unwrap_err();
    assert!(matches!(err, PromError::Decode(_)), "{err:?}");

    let err = interpret(200, b"<html>ok</html>").unwrap_err();
    assert!(matches!(err, PromError::Decode(_)) && !err.is_retryable(), "{err:?}");
}

#[test]
fn error_document_becomes_api_error_whatever_the_status() {
    let bad_data = br#"{"status":"error","errorType":"bad_data","error":"parse error: unexpected end"}"#;
    let err = interpret(400, bad_data).unwrap_err();
    match &err {
        PromError::Api { error_type, error } => {
            assert_eq!(*error_type, ApiErrorType::BadData);
            assert_eq!(error, "parse error: unexpected end");
        }
        other => panic!("expected Api, got {other:?}"),
    }
    assert!(!err.is_retryable());

    let timeout = br#"{"status":"error","errorType":"timeout","error":"query timed out"}"#;
    assert!(interpret(503, timeout).unwrap_err().is_retryable());
    let unknown = br#"{"status":"error","errorType":"shiny","error":"x"}"#;
    let err = interpret(422, unknown).unwrap_err();
    assert!(matches!(&err, PromError::Api { error_type: ApiErrorType::Other(t), .. } if t == "shiny"));
    assert!(!err.is_retryable());
}

#[test]
fn non_json_error_status_is_classified_by_code() {
    let err = interpret(502, b"<html>Bad Gateway</html>\n").unwrap_err();
    assert!(
        matches!(&err, PromError::Status { code: 502, body_excerpt } if body_excerpt == "<html>Bad Gateway</html>")
    );
    assert!(err.is_retryable());
    assert!(interpret(429, b"slow down").unwrap_err().is_retryable());
    assert!(!interpret(404, b"404 page not found").unwrap_err().is_retryable());
    assert!(!interpret(401, b"unauthorized").unwrap_err().is_retryable());
}

#[test]
fn excerpt_is_bounded_and_cut_on_char_boundary() {
    let body = "é".repeat(BODY_EXCERPT_BYTES); // two bytes each
    let text = excerpt(body.as_bytes());
    assert_eq!(text.len(), BODY_EXCERPT_BYTES);
    let text = excerpt(format!("x{body}").as_bytes());
    assert_eq!(text.len(), BODY_EXCERPT_BYTES - 1);
}

/// Every grid point `start + k*step <= end`, the points Prometheus evaluates.
fn grid(start: Millis, end: Millis, step: Millis) -> Vec<Millis> {
    (0..).map(|k| start + k * step).take_while(|at| *at <= end).collect()
}

#[test]
fn chunks_cover_the_grid_exactly_once_within_the_limit() {
    let cases = [
        (0, 0, 1, 1),
        (0, 10_000, 1_000, 3),
        (0, 10_500, 1_000, 3),
        (0, 10_500, 1_000, 11),
        (0, 10_500, 1_000, 12),
        (1_767_225_600_123, 1_767_225_700_000, 7_000, 4),
        (5, 6, 10, 2),
    ];
    for (start, end, step, max_points) in cases {
        let chunks = plan_chunks(start, end, step, max_points).unwrap();
        let mut covered = Vec::new();
        for (chunk_start, chunk_end) in &chunks {
            let points = grid(*chunk_start, *chunk_end, step);
            assert!(!points.is_empty() && points.len() <= max_points as usize, "{chunks:?}");
            covered.extend(points);
        }
        assert_eq!(covered, grid(start, end, step), "case {start} {end} {step} {max_points}");
    }
}

#[test]
fn thirty_days_at_one_minute_is_four_chunks() {
    let end = 1_767_225_600_000;
    let start = end - 30 * crate::clock::DAY;
    let chunks = plan_chunks(start, end, crate::clock::MINUTE, MAX_POINTS_PER_QUERY).unwrap();
    assert_eq!(chunks.len(), 4); // 43,201 points
    assert_eq!(chunks[0], (start, start + 10_999 * crate::clock::MINUTE));
    assert_eq!(chunks[1].0, start + 11_000 * crate::clock::MINUTE);
}

#[test]
fn chunk_planning_rejects_impossible_requests() {
    for (start, end, step, max_points) in [(0, 10, 0, 5), (10, 0, 1, 5), (0, 10, 1, 0)] {
        let err = plan_chunks(start, end, step, max_points).unwrap_err();
        assert!(matches!(err, PromError::InvalidArgument(_)) && !err.is_retryable());
    }
    // Near the end of time the stride overflows; planning must stop, not wrap or loop.
    let chunks = plan_chunks(Millis::MAX - 10, Millis::MAX, 3, u32::MAX).unwrap();
    assert_eq!(chunks, [(Millis::MAX - 10, Millis::MAX)]);
}

#[test]
fn merge_joins_series_across_chunks_and_drops_shared_boundary_points() {
    let first = r#"{"status":"success","data":{"resultType":"matrix","result":[
        {"metric":{"code":"200"},"values":[[1,"10"],[2,"11"],[3,"12"]]}]}}"#;
    // A server that aligns chunks itself repeats t=3; a new series appears mid-range.
    let second = r#"{"status":"success","data":{"resultType":"matrix","result":[
        {"metric":{"code":"500"},"values":[[4,"1"]]},
        {"metric":{"code":"200"},"values":[[3,"99"],[4,"13"]]}]}}"#;
    let merged = merge(&[first, second]);
    assert_eq!(
        merged,
        [
            SeriesPoints {
                labels: labels(&[("code", "200")]),
                points: vec![(1000, 10.0), (2000, 11.0), (3000, 12.0), (4000, 13.0)],
            },
            SeriesPoints { labels: labels(&[("code", "500")]), points: vec![(4000, 1.0)] },
        ]
    );
}

#[test]
fn formats_milliseconds_as_exact_seconds() {
    assert_eq!(format_seconds(0), "0.000");
    assert_eq!(format_seconds(1_500), "1.500");
    assert_eq!(format_seconds(-1_500), "-1.500");
    assert_eq!(format_seconds(1_767_225_600_007), "1767225600.007");
}

#[test]
fn form_encoding_escapes_promql() {
    let body = form_encode(&[("query", r#"up{job=~"a|b", x!="1&2"}"#), ("step", "1.000")]);
    assert_eq!(body, "query=up%7Bjob%3D%7E%22a%7Cb%22%2C+x%21%3D%221%262%22%7D&step=1.000");
    assert_eq!(form_encode(&[("q", "é")]), "q=%C3%A9");
}

#[test]
fn base_url_is_normalised_and_checked() {
    assert_eq!(parse_base_url("http://mimir:8080/prometheus").unwrap().as_str(), "http://mimir:8080/prometheus/");
    let base = parse_base_url("https://prom.example/").unwrap();
    assert_eq!(base.join("api/v1/query").unwrap().as_str(), "https://prom.example/api/v1/query");
    for bad in ["ftp://prom", "http://user:secret@prom", "http://prom/?x=1", "not a url"] {
        let err = parse_base_url(bad).unwrap_err();
        assert!(matches!(err, PromError::Config(_)), "{bad}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}

#[test]
fn config_debug_hides_secrets() {
    let cfg = PromConfig {
        url: "http://prom:9090".to_string(),
        timeout: Duration::from_secs(5),
        http: HttpOptions {
            headers: vec![("Authorization".to_string(), crate::spec::Secret::new("Basic c2VjcmV0".to_string()))],
            bearer_token: Some(crate::spec::Secret::new("tok-123".to_string())),
            max_body_bytes: 1 << 20,
            ca_file: None,
            insecure_skip_verify: false,
        },
    };
    let text = format!("{cfg:?}");
    assert!(!text.contains("tok-123") && !text.contains("c2VjcmV0"), "{text}");
    assert!(text.contains("Authorization") && text.contains("prom:9090"), "{text}");
}
