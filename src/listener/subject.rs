//! A certificate subject as RFC 4514 writes a distinguished name, the one
//! form upstreams can parse without being fooled: the last RDN first,
//! attributes joined by `,` (and `+` within an RDN), and every character
//! that could end a value or start another escaped. Without the escaping a
//! CN of `mallory, O=Acme, CN=billing` reads as three attributes, and an
//! upstream that takes the last CN believes `billing`. Owns only the
//! formatting; which certificates are verified is [`super::tls`]'s.

use std::fmt::Write as _;

use x509_parser::der_parser::asn1_rs::{Tag, ToDer};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// RFC 4514 §3: the short names a string form uses; others are written as
/// their dotted OID.
const SHORT_NAMES: [(&str, &str); 9] = [
    ("2.5.4.3", "CN"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.6", "C"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

/// `name` in RFC 4514's string form, printable ASCII only (so it fits a
/// header value whatever the certificate holds: other octets are escaped
/// as `\XX`, which §2.4 allows for any character).
pub(crate) fn rfc4514(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            attribute(&mut out, atv);
        }
    }
    out
}

fn attribute(out: &mut String, atv: &AttributeTypeAndValue<'_>) {
    let oid = atv.attr_type().to_id_string();
    match SHORT_NAMES.iter().find(|(o, _)| *o == oid) {
        Some((_, short)) => out.push_str(short),
        None => out.push_str(&oid),
    }
    out.push('=');
    match text(atv) {
        Some(s) => escape(out, &s),
        // §2.4: a value of no string type is `#` and the hex of its BER.
        None => {
            out.push('#');
            for b in atv.attr_value().to_der_vec().unwrap_or_default() {
                let _ = write!(out, "{b:02x}");
            }
        }
    }
}

/// The value as text when it is of a string type.
fn text(atv: &AttributeTypeAndValue<'_>) -> Option<String> {
    let v = atv.attr_value();
    match v.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => std::str::from_utf8(v.data).ok().map(str::to_owned),
        Tag::BmpString => {
            let units: Vec<u16> = v
                .data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// RFC 4514 §2.4: `"+,;<>\` escaped with `\`, a leading space or `#` and a
/// trailing space too; control and non-ASCII octets as `\XX`.
fn escape(out: &mut String, value: &str) {
    let last = value.len().saturating_sub(1);
    for (i, b) in value.bytes().enumerate() {
        match b {
            b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b' ' if i == 0 || i == last => out.push_str("\\ "),
            b'#' if i == 0 => out.push_str("\\#"),
            0x21..=0x7e | b' ' => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:02X}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    fn subject_of(dn: &[(DnType, &str)]) -> String {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        for (t, v) in dn {
            name.push(t.clone(), *v);
        }
        params.distinguished_name = name;
        let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
        rfc4514(parsed.subject())
    }

    #[test]
    fn a_comma_in_a_value_cannot_forge_another_attribute() {
        let s = subject_of(&[
            (DnType::OrganizationName, "Evil"),
            (DnType::CommonName, "mallory, O=Acme, CN=billing"),
        ]);
        assert_eq!(s, r"CN=mallory\, O=Acme\, CN=billing,O=Evil");
    }

    #[test]
    fn the_last_rdn_comes_first() {
        let s = subject_of(&[
            (DnType::CountryName, "US"),
            (DnType::OrganizationName, "Acme"),
            (DnType::CommonName, "billing"),
        ]);
        assert_eq!(s, "CN=billing,O=Acme,C=US");
    }

    #[test]
    fn special_leading_trailing_and_non_ascii_characters_are_escaped() {
        let mut out = String::new();
        escape(&mut out, "#a+b;c<d>\"e\\ ");
        assert_eq!(out, r#"\#a\+b\;c\<d\>\"e\\\ "#);
        let mut out = String::new();
        escape(&mut out, " é\n");
        assert_eq!(out, r"\ \C3\A9\0A");
    }
}
