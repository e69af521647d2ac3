#![no_main]
//! Arbitrary bytes, split at arbitrary points, into the frame decoder: no panic, memory bounded
//! by what arrived, and the same frames whatever the split.
use fleetwire_wire::FrameDecoder;
use libfuzzer_sys::fuzz_target;

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
    if data.len() < 3 {
        return;
    }
    let max = u32::from(u16::from_be_bytes([data[0], data[1]]));
    let split = usize::from(data[2]);
    let stream = &data[3..];
    let whole = run(&[stream], max);
    let cut = split.min(stream.len());
    let parts = run(&[&stream[..cut], &stream[cut..]], max);
    assert_eq!(whole, parts);
});
