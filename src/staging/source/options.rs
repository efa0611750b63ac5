//! The server `options` of a connection (`-c name=value …`), split and
//! joined as the server splits them, so downtime's own words can be put
//! last and no word before them can swallow them.

use super::conninfo::is_space;

/// The words of an `options` value, split as the server splits them (on
/// white space; a backslash takes the next character literally).
pub fn split(options: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = options.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| is_space(*c)) {
            chars.next();
        }
        if chars.peek().is_none() {
            return words;
        }
        let mut word = String::new();
        let mut escaped = false;
        while let Some(&c) = chars.peek() {
            if is_space(c) && !escaped {
                break;
            }
            if !escaped && c == '\\' {
                escaped = true;
            } else {
                escaped = false;
                word.push(c);
            }
            chars.next();
        }
        words.push(word);
    }
}

/// Words joined back into an `options` value that splits into exactly them.
pub fn join<S: AsRef<str>>(words: &[S]) -> String {
    let escaped: Vec<String> = words
        .iter()
        .map(|w| {
            let mut out = String::new();
            for c in w.as_ref().chars() {
                if c == '\\' || is_space(c) {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        })
        .collect();
    escaped.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_and_join_as_the_server_splits_them() {
        let words = split(r"-c a=b\ c  -c x=y\\ \");
        // A lone backslash at the end is an empty word to the server too.
        assert_eq!(words, vec!["-c", "a=b c", "-c", r"x=y\", ""]);
        let tricky = vec![
            "-c".to_string(),
            r"application_name=x\".into(),
            "a b".into(),
            "tab\there".into(),
        ];
        assert_eq!(split(&join(&tricky)), tricky);
    }
}
