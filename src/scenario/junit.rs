//! JUnit XML for CI: one `<testcase>` per scenario, with the failure message of its failed step.

/// One scenario's outcome.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    /// The scenario file, as given.
    pub file: String,
    pub seconds: f64,
    /// `(message, details)` when the scenario failed.
    pub failure: Option<(String, String)>,
    /// The progress lines of its steps.
    pub output: String,
}

/// Escapes text for XML attributes and content (also drops characters XML 1.0 forbids).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// The JUnit document.
pub fn render(cases: &[Case]) -> String {
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    let total: f64 = cases.iter().map(|c| c.seconds).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"agc-sandbox scenarios\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{total:.3}\">\n",
        cases.len()
    ));
    out.push_str(&format!(
        "  <testsuite name=\"agc-sandbox scenarios\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{total:.3}\">\n",
        cases.len()
    ));
    for c in cases {
        out.push_str(&format!(
            "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\" time=\"{:.3}\"",
            escape(&c.name),
            escape(&c.file),
            escape(&c.file),
            c.seconds
        ));
        out.push_str(">\n");
        if let Some((msg, details)) = &c.failure {
            out.push_str(&format!(
                "      <failure message=\"{}\" type=\"ScenarioStepFailed\">{}</failure>\n",
                escape(msg),
                escape(details)
            ));
        }
        out.push_str(&format!(
            "      <system-out>{}</system-out>\n",
            escape(&c.output)
        ));
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape("a<b>&\"c\" 'd'\u{1}"),
            "a&lt;b&gt;&amp;&quot;c&quot; &apos;d&apos;"
        );
    }

    #[test]
    fn one_testcase_per_scenario() {
        let xml = render(&[
            Case {
                name: "ok".into(),
                file: "a.yaml".into(),
                seconds: 0.5,
                failure: None,
                output: String::new(),
            },
            Case {
                name: "bad <one>".into(),
                file: "b.yaml".into(),
                seconds: 1.0,
                failure: Some(("expected 200, got 503".into(), "details".into())),
                output: String::new(),
            },
        ]);
        assert!(xml.contains("tests=\"2\" failures=\"1\""));
        assert!(xml.contains("name=\"bad &lt;one&gt;\""));
        assert!(xml.contains("<failure message=\"expected 200, got 503\""));
    }
}
