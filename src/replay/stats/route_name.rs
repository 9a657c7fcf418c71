//! Route names: the method and the normalised path a request is counted under.

/// A route: the method and the path with its query dropped and ids replaced by `{id}`
/// (numbers, UUIDs, and hex or base64-like tokens of 16+ characters).
pub fn route(method: &str, path: &[u8]) -> String {
    let mut out = String::new();
    route_into(&mut out, method, path);
    out
}

/// [`route`] written into `out` (cleared first), so a caller naming many requests reuses one
/// buffer.
pub fn route_into(out: &mut String, method: &str, path: &[u8]) {
    let path = path.split(|&b| b == b'?').next().unwrap_or(&[]);
    out.clear();
    out.push_str(method);
    out.push(' ');
    for (i, seg) in path.split(|&b| b == b'/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if is_id(seg) {
            out.push_str("{id}");
        } else if let Ok(seg) = std::str::from_utf8(seg) {
            out.push_str(seg);
        } else {
            out.push_str(&String::from_utf8_lossy(seg));
        }
    }
}

fn is_id(seg: &[u8]) -> bool {
    if seg.is_empty() {
        return false;
    }
    if seg.iter().all(u8::is_ascii_digit) {
        return true;
    }
    let uuid = seg.len() == 36
        && seg.iter().enumerate().all(|(i, &b)| {
            if [8, 13, 18, 23].contains(&i) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        });
    let token = seg.len() >= 16
        && seg
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && seg.iter().any(u8::is_ascii_digit);
    uuid || token
}
