//! Negative controls: every drill proves it can fail (issue 19 §2).
