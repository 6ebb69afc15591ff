//! The native decoder on arbitrary bytes: frames are split off as a server
//! would (in arbitrary read sizes), and each payload is validated as every
//! kind the server or client accepts. Invariants, not just "no panic": a
//! reader never hands out a range outside what arrived, never grows its
//! buffer past a small multiple of what arrived, and a
//! batch that validates can be read op by op within its payload.
#![no_main]

use corekv::op::OpSource;
use corekv::protocol::native::{
    decode_owned, BatchView, ErrorFrame, FrameReader, Hello, NextFrame, NodeStats, RecvBuf,
    ReplyView,
};
use libfuzzer_sys::fuzz_target;

const MAX_PAYLOAD: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read size, so frames split at every place.
    let (chunk, data) = match data.split_first() {
        Some((c, rest)) => (1 + *c as usize, rest),
        None => return,
    };
    let mut reader = FrameReader::new(64, MAX_PAYLOAD);
    let mut fed = 0;
    loop {
        match reader.next_frame() {
            Ok(NextFrame::Frame(h, range)) => {
                assert!(range.end <= reader.end && range.len() == h.len);
                let mut payload = RecvBuf::new();
                payload.extend_from_slice(&reader.buf[range]);
                if let Ok(view) = BatchView::new(&payload, 1 << 16) {
                    for i in 0..view.len() {
                        let (_, key, value) = view.op(i);
                        assert!(key.len() + value.len() <= payload.len());
                    }
                }
                let _ = ReplyView::new(&payload, 3);
                let _ = decode_owned::<Hello>(&payload);
                let _ = decode_owned::<NodeStats>(&payload);
                let _ = decode_owned::<ErrorFrame>(&payload);
                continue;
            }
            Ok(NextFrame::NeedMore) => {}
            Err(_) => return, // the server answers with an error frame and closes
        }
        if fed == data.len() {
            return;
        }
        let space = reader.read_space();
        let n = space.len().min(chunk).min(data.len() - fed);
        space[..n].copy_from_slice(&data[fed..fed + n]);
        reader.filled(n);
        fed += n;
        // Growth follows arrival: a small multiple of what arrived (the
        // buffer doubles; its allocation may double once more), never a
        // declared length.
        assert!(
            reader.capacity() <= 4 * fed + 4096,
            "buffer {} after {fed} bytes",
            reader.capacity()
        );
    }
});
