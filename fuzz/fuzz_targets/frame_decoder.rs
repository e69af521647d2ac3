#![no_main]
//! Arbitrary bytes, cut into pieces of 1–64 bytes at many points (sizes from the input), into
//! the frame decoder: no panic, memory bounded by what arrived, and the same frames as when the
//! stream arrives whole. Input: `[limit: u16][split count][split sizes…][stream…]`.
use fleetwire_wire::FrameDecoder;
use libfuzzer_sys::fuzz_target;

#[path = "common/ops.rs"]
mod ops;

fn run(chunks: &[&[u8]], max: u32) -> (Vec<(u8, u8, Vec<u8>)>, bool) {
    let mut decoder = FrameDecoder::new(max);
    let mut frames = Vec::new();
    let mut total = 0usize;
    for chunk in chunks {
        total += chunk.len();
        let mut input = *chunk;
        while !input.is_empty() {
            match decoder.decode(input) {
                Ok((used, frame)) => {
                    if let Some(f) = frame {
                        frames.push((f.version, f.msg_type, f.body.to_vec()));
                    }
                    input = &input[used..];
                }
                Err(_) => return (frames, true),
            }
            assert!(decoder.capacity() <= total.max(64) * 2 + 4096);
        }
    }
    (frames, false)
}

fuzz_target!(|data: &[u8]| {
    let mut input = ops::Ops::new(data);
    let max = u32::from(input.u16());
    let mut split = ops::Splitter::read(&mut input);
    let stream = input.bytes(usize::MAX);
    let whole = run(&[stream], max);
    let mut pieces = Vec::new();
    split.feed(stream, |p| pieces.push(p.to_vec()));
    let pieces: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
    let parts = run(&pieces, max);
    assert_eq!(whole, parts);
});
