//! `vpcguard::proxy::sniff` and `vpcguard::proxy::rewind::Rewind`: telling HTTP/2 prior knowledge
//! from HTTP/1.1 by a connection's first bytes, and replaying them, over fuzzed bytes arriving in
//! fuzzed pieces.
//!
//! Input: one byte that seeds the piece sizes (1–16 bytes each, cycling), then the bytes the peer
//! sends; the peer then closes.
//!
//! Beyond "no panic":
//! - `classify` agrees with a direct comparison: HTTP/2 exactly when the input starts with the
//!   24-byte preface; `None` only for a strict prefix of it;
//! - `sniff` decides as `classify` does on the whole input, and never reads past the first piece
//!   that decides (what it returns is a prefix of the input, and is at least the bytes that decide);
//! - judge what you forward: `Rewind` over what `sniff` read and the rest of the stream gives back
//!   exactly the input, in order, whatever the read sizes.
#![no_main]

use std::pin::Pin;
use std::task::{Context, Poll};

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use vpcguard::proxy::rewind::Rewind;
use vpcguard::proxy::sniff::{H2_PREFACE, Http, classify, sniff};

/// Gives `data` in pieces of the sizes `sizes` cycles through, then end of stream.
struct Pieces<'a> {
    data: &'a [u8],
    sizes: [usize; 4],
    turn: usize,
}

impl AsyncRead for Pieces<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let size = self.sizes[self.turn % 4];
        self.turn += 1;
        let n = size.min(self.data.len()).min(buf.remaining());
        let (now, rest) = self.data.split_at(n);
        buf.put_slice(now);
        self.data = rest;
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    let preface: &[u8] = H2_PREFACE;
    let want = if data.starts_with(preface) {
        Some(Http::H2)
    } else if preface.starts_with(data) {
        None
    } else {
        Some(Http::H1)
    };
    assert_eq!(classify(data), want, "classify");

    let sizes = [
        usize::from(seed & 0x0f) + 1,
        usize::from(seed >> 4) + 1,
        usize::from(seed.rotate_left(2) & 0x0f) + 1,
        usize::from(seed.rotate_left(6) & 0x0f) + 1,
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut io = Pieces {
            data,
            sizes,
            turn: 0,
        };
        let (http, first) = sniff(&mut io).await.expect("Pieces never fails");
        // An input that never decides ends as HTTP/1.1 at the end of stream.
        assert_eq!(http, want.unwrap_or(Http::H1), "sniff");
        assert!(data.starts_with(&first), "sniff returned what it read");
        if let Some(decided) = want {
            assert_eq!(classify(&first), Some(decided), "read enough to decide");
            let before = first.len() - io.sizes[(io.turn + 3) % 4].min(first.len());
            assert_eq!(
                classify(&first[..before]),
                None,
                "stopped at the piece that decided"
            );
        }
        let mut replay = Vec::new();
        Rewind::new(first, io)
            .read_to_end(&mut replay)
            .await
            .expect("replay");
        assert_eq!(replay, data, "replayed exactly");
    });
});
