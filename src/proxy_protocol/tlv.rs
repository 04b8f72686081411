//! TLV half of the PROXY v2 parser (spec §2.2.1–§2.2.7): splitting the TLV
//! list, the CRC32c check, the standard types, and the vendor [`TlvRule`]s
//! that carry the VPC endpoint identity. Pure functions over a header whose
//! length the parent module has already checked.

use super::{
    MAX_UNIQUE_ID_LEN, PP2_SUBTYPE_SSL_VERSION, PP2_TYPE_AUTHORITY, PP2_TYPE_CRC32C, PP2_TYPE_SSL,
    PP2_TYPE_UNIQUE_ID, ProxyHeader, ProxyHeaderError as E,
};

/// CRC-32C (Castagnoli), the checksum spec §2.2.2 prescribes.
pub(super) const CASTAGNOLI: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// The useful part of a [`PP2_TYPE_SSL`] TLV (spec §2.2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslInfo {
    /// `PP2_CLIENT_SSL` 0x01, `PP2_CLIENT_CERT_CONN` 0x02, `PP2_CLIENT_CERT_SESS` 0x04.
    pub client: u8,
    /// 0 when the client presented a certificate that verified, else non-zero.
    pub verify: u32,
    /// [`PP2_SUBTYPE_SSL_VERSION`] value, e.g. `"TLSv1.3"`, when present.
    pub version: Option<String>,
}

/// The VPC endpoint identity carried by a vendor TLV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointTlv {
    /// A textual endpoint id such as AWS `vpce-0abc…` (an integer TLV yields its decimal form).
    VpcepId(String),
    /// A numeric id such as the Azure LinkID or GCP PSC connection id.
    Marker(u64),
}

/// Which vendor TLV carries the endpoint identity and how to decode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlvRule {
    /// TLV type byte (vendors use 0xE0..=0xEF, spec §2.2.7).
    pub tlv_type: u8,
    /// If set, the first value byte must equal it and the rest is the payload;
    /// TLVs of this type with another subtype are skipped, an empty one is invalid.
    pub subtype: Option<u8>,
    /// How the payload is encoded.
    pub encoding: TlvEncoding,
    /// What the decoded payload becomes.
    pub yields: Yields,
}

/// Payload encoding of a vendor TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlvEncoding {
    /// 1..=128 bytes of `[A-Za-z0-9._:-]`.
    Ascii,
    /// Exactly 4 bytes, big-endian.
    U32Be,
    /// Exactly 4 bytes, little-endian.
    U32Le,
    /// Exactly 8 bytes, big-endian.
    U64Be,
    /// Exactly 8 bytes, little-endian.
    U64Le,
}

/// What a [`TlvRule`] produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Yields {
    /// [`EndpointTlv::VpcepId`]; text must also be `[A-Za-z0-9-]`, 1..=64 chars.
    VpcepId,
    /// [`EndpointTlv::Marker`]; text must be a decimal u64.
    Marker,
}

impl TlvRule {
    /// AWS PrivateLink: type 0xEA, subtype 0x01 (`PP2_SUBTYPE_AWS_VPCE_ID`), ASCII `vpce-…`.
    pub const fn aws() -> Self {
        Self {
            tlv_type: 0xEA,
            subtype: Some(0x01),
            encoding: TlvEncoding::Ascii,
            yields: Yields::VpcepId,
        }
    }
    /// Azure Private Link: type 0xEE, subtype 0x01, LinkID as u32 little-endian.
    pub const fn azure() -> Self {
        Self {
            tlv_type: 0xEE,
            subtype: Some(0x01),
            encoding: TlvEncoding::U32Le,
            yields: Yields::Marker,
        }
    }
    /// GCP Private Service Connect: type 0xE0, no subtype, connection id as u64 big-endian.
    pub const fn gcp() -> Self {
        Self {
            tlv_type: 0xE0,
            subtype: None,
            encoding: TlvEncoding::U64Be,
            yields: Yields::Marker,
        }
    }
}

/// Decode the TLVs in `header[tlv_start..]` into `out`. `header` is the whole
/// v2 header (signature included) because the CRC covers all of it.
pub(super) fn decode_tlvs(
    header: &[u8],
    tlv_start: usize,
    out: &mut ProxyHeader,
    rules: &[TlvRule],
) -> Result<(), E> {
    let tlvs = split_tlvs(header.get(tlv_start..).unwrap_or_default(), tlv_start)?;
    out.crc_verified = verify_crc(header, &tlvs)?;
    for tlv in &tlvs {
        match tlv.ty {
            PP2_TYPE_AUTHORITY if out.authority.is_none() => {
                let text = std::str::from_utf8(tlv.value).map_err(|_| E::TlvMalformed)?;
                out.authority = Some(text.to_owned());
            }
            PP2_TYPE_UNIQUE_ID if out.unique_id.is_none() => {
                if tlv.value.len() > MAX_UNIQUE_ID_LEN {
                    return Err(E::TlvMalformed);
                }
                out.unique_id = Some(tlv.value.to_vec());
            }
            PP2_TYPE_SSL if out.ssl.is_none() => out.ssl = Some(parse_ssl(tlv.value)?),
            // NOOP (§2.2.3), repeats of the above and unknown types are ignored.
            _ => {}
        }
    }
    out.endpoint = match_rules(&tlvs, rules)?;
    Ok(())
}

/// One TLV; `at` is the offset of `value` from the start of the header.
struct Tlv<'a> {
    ty: u8,
    value: &'a [u8],
    at: usize,
}

/// §2.2: TLVs fill the rest of the header exactly; one that would run past the
/// end (or a dangling 1–2 byte fragment) means the header is corrupt.
fn split_tlvs(mut data: &[u8], mut at: usize) -> Result<Vec<Tlv<'_>>, E> {
    let mut out = Vec::new();
    while let Some((head, rest)) = data.split_first_chunk::<3>() {
        let [ty, hi, lo] = *head;
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let value = rest.get(..len).ok_or(E::TlvMalformed)?;
        out.push(Tlv {
            ty,
            value,
            at: at + 3,
        });
        data = rest.get(len..).unwrap_or_default();
        at += 3 + len;
    }
    if data.is_empty() {
        Ok(out)
    } else {
        Err(E::TlvMalformed)
    }
}

/// §2.2.2: CRC32c over the whole header with the checksum field zeroed.
/// Two CRC TLVs would be ambiguous, so that is treated as malformed.
fn verify_crc(header: &[u8], tlvs: &[Tlv<'_>]) -> Result<bool, E> {
    let mut crcs = tlvs.iter().filter(|t| t.ty == PP2_TYPE_CRC32C);
    let Some(tlv) = crcs.next() else {
        return Ok(false);
    };
    let want = <[u8; 4]>::try_from(tlv.value).map_err(|_| E::TlvMalformed)?;
    if crcs.next().is_some() {
        return Err(E::TlvMalformed);
    }
    let mut digest = CASTAGNOLI.digest();
    digest.update(header.get(..tlv.at).unwrap_or_default());
    digest.update(&[0; 4]);
    digest.update(header.get(tlv.at + 4..).unwrap_or_default());
    if digest.finalize() == u32::from_be_bytes(want) {
        Ok(true)
    } else {
        Err(E::CrcMismatch)
    }
}

/// §2.2.5: `client` (1 byte), `verify` (4 bytes BE), then sub-TLVs.
fn parse_ssl(value: &[u8]) -> Result<SslInfo, E> {
    let Some(([client, v0, v1, v2, v3], rest)) =
        value.split_first_chunk::<5>().map(|(h, r)| (*h, r))
    else {
        return Err(E::TlvMalformed);
    };
    let mut info = SslInfo {
        client,
        verify: u32::from_be_bytes([v0, v1, v2, v3]),
        version: None,
    };
    let subs = split_tlvs(rest, 0)?;
    if let Some(sub) = subs.iter().find(|t| t.ty == PP2_SUBTYPE_SSL_VERSION) {
        // The spec says US-ASCII; anything else means a broken sender.
        let text = std::str::from_utf8(sub.value).ok().filter(|t| t.is_ascii());
        info.version = Some(text.ok_or(E::TlvMalformed)?.to_owned());
    }
    Ok(info)
}

/// Vendor TLVs: the first rule (in order) that finds its TLV decides; a found
/// TLV that does not decode is an error rather than "no identity", because a
/// silently dropped identity could widen what a client is allowed to reach.
fn match_rules(tlvs: &[Tlv<'_>], rules: &[TlvRule]) -> Result<Option<EndpointTlv>, E> {
    for rule in rules {
        for tlv in tlvs.iter().filter(|t| t.ty == rule.tlv_type) {
            let payload = match (rule.subtype, tlv.value.split_first()) {
                (None, _) => tlv.value,
                (Some(_), None) => return Err(E::VendorTlvInvalid),
                (Some(want), Some((&got, rest))) if got == want => rest,
                // Same vendor type, other subtype (e.g. a future AWS field): not ours.
                (Some(_), Some(_)) => continue,
            };
            return decode_vendor(rule, payload).map(Some);
        }
    }
    Ok(None)
}

/// Decode a vendor payload per `rule`. Integers must have their exact width and
/// text must be in the documented charset: anything else is a sender we do not
/// understand, and guessing at an identity is worse than refusing it.
fn decode_vendor(rule: &TlvRule, p: &[u8]) -> Result<EndpointTlv, E> {
    fn bad<T>(_: T) -> E {
        E::VendorTlvInvalid
    }
    let number = match rule.encoding {
        TlvEncoding::Ascii => None,
        TlvEncoding::U32Be => Some(u64::from(u32::from_be_bytes(p.try_into().map_err(bad)?))),
        TlvEncoding::U32Le => Some(u64::from(u32::from_le_bytes(p.try_into().map_err(bad)?))),
        TlvEncoding::U64Be => Some(u64::from_be_bytes(p.try_into().map_err(bad)?)),
        TlvEncoding::U64Le => Some(u64::from_le_bytes(p.try_into().map_err(bad)?)),
    };
    let text = match number {
        Some(n) if rule.yields == Yields::Marker => return Ok(EndpointTlv::Marker(n)),
        Some(n) => return Ok(EndpointTlv::VpcepId(n.to_string())),
        None => p,
    };
    let charset = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-');
    if text.is_empty() || text.len() > 128 || !text.iter().all(charset) {
        return Err(E::VendorTlvInvalid);
    }
    let text = std::str::from_utf8(text).map_err(bad)?;
    match rule.yields {
        Yields::Marker => text.parse().map(EndpointTlv::Marker).map_err(bad),
        Yields::VpcepId => {
            let vpce = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
            if text.len() > 64 || !text.bytes().all(vpce) {
                return Err(E::VendorTlvInvalid);
            }
            Ok(EndpointTlv::VpcepId(text.to_owned()))
        }
    }
}
