//! The README's Python verification recipe, run as written against headers this crate
//! signs: a receiver copying it accepts what we send and refuses a changed body, another
//! secret and a stale timestamp.

use std::process::Command;
use xiezhi_notify::webhook::system_unix_seconds;
use xiezhi_notify::{signature_header, WebhookSecret};

fn recipe() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README");
    let from = readme.find("**Verifying a webhook.**").expect("the README's verification section");
    let block = &readme[from..];
    let start = block.find("```python\n").expect("a Python block") + "```python\n".len();
    let end = start + block[start..].find("```").expect("the block's end");
    block[start..end].to_owned()
}

fn python_verifies(secret: &str, header: &str, body: &[u8]) -> bool {
    let script =
        format!("{}\nimport sys\nprint(verify(sys.argv[1], sys.argv[2], sys.stdin.buffer.read()))\n", recipe());
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(secret)
        .arg(header)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (the test suite needs it for scripts/services too)");
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(body).expect("writes the body");
    let output = child.wait_with_output().expect("python3 finishes");
    assert!(output.status.success(), "the recipe failed: {}", String::from_utf8_lossy(&output.stderr));
    match String::from_utf8_lossy(&output.stdout).trim() {
        "True" => true,
        "False" => false,
        other => panic!("the recipe printed {other}"),
    }
}

#[test]
fn the_readme_recipe_accepts_our_signatures_and_refuses_others() {
    let secret = WebhookSecret::generate().expect("OS generator");
    let body = r#"{"id":"msg_1","type":"appeal_received","summary":"我们已收到您的申诉"}"#.as_bytes();
    let now = system_unix_seconds();
    let header = signature_header(&secret, now, body);
    assert!(python_verifies(secret.expose(), &header, body));
    assert!(!python_verifies(secret.expose(), &header, b"{}"));
    assert!(!python_verifies("whsec_another_secret_0123456789abcdef", &header, body));
    let stale = signature_header(&secret, now - 600, body);
    assert!(!python_verifies(secret.expose(), &stale, body));
    assert!(!python_verifies(secret.expose(), "t=oops", body));
}
