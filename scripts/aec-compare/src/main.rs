//! sonora 0.2.0 against aec3 0.4.0 on the same fake room, offline: the far
//! end plays, the microphone hears `near + 0.5 × far` delayed, and each
//! canceller (high-pass filter and AEC3, nothing else) cleans the microphone
//! in 10 ms blocks, far end first. Speech is the project's espeak-ng samples
//! (assets/speech), 16 kHz taken to 48 kHz by linear interpolation.

use std::time::Instant;

const N: usize = 480;
const RATE: f32 = 48_000.0;

trait Canceller {
    fn render(&mut self, far: &[f32]);
    fn capture(&mut self, mic: &mut [f32]);
}

struct Sonora(sonora::AudioProcessing);

impl Sonora {
    fn new() -> Sonora {
        let config = sonora::Config {
            echo_canceller: Some(sonora::config::EchoCanceller::default()),
            high_pass_filter: Some(sonora::config::HighPassFilter::default()),
            ..Default::default()
        };
        Sonora(
            sonora::AudioProcessing::builder()
                .config(config)
                .capture_config(sonora::StreamConfig::new(48_000, 1))
                .render_config(sonora::StreamConfig::new(48_000, 1))
                .build(),
        )
    }
}

impl Canceller for Sonora {
    fn render(&mut self, far: &[f32]) {
        let mut unused = [0.0f32; N];
        self.0.process_render_f32(&[far], &mut [&mut unused]).expect("render");
    }
    fn capture(&mut self, mic: &mut [f32]) {
        let input = mic.to_vec();
        self.0.process_capture_f32(&[&input], &mut [mic]).expect("capture");
    }
}

struct Aec3(aec3::pipelines::linear::LinearPipeline);

impl Aec3 {
    fn new() -> Aec3 {
        let format = aec3::nodes::audio::AudioFormat::ten_ms(48_000, 1);
        Aec3(
            aec3::pipelines::linear::builder(format, format)
                .enable_noise_suppression(false)
                .enable_gain_controller2(false)
                .enable_post_filter(false)
                .build()
                .expect("pipeline"),
        )
    }
}

impl Canceller for Aec3 {
    fn render(&mut self, far: &[f32]) {
        self.0.handle_render_frame(far).expect("render");
    }
    fn capture(&mut self, mic: &mut [f32]) {
        let input = mic.to_vec();
        self.0.process_capture_frame(&input, mic).expect("capture");
    }
}

fn speech(name: &str, len: usize) -> Vec<f32> {
    let path = format!("{}/../../assets/speech/{name}.wav", env!("CARGO_MANIFEST_DIR"));
    let mut reader = hound::WavReader::open(&path).expect("speech sample");
    let x: Vec<f32> = reader.samples::<i16>().map(|s| s.unwrap_or(0) as f32 / 32768.0).collect();
    // 16 kHz to 48 kHz, looped to `len`.
    (0..len)
        .map(|i| {
            let t = (i % (x.len() * 3)) as f32 / 3.0;
            let k = t as usize;
            let f = t - k as f32;
            let a = x[k % x.len()];
            let b = x[(k + 1) % x.len()];
            0.7 * (a + f * (b - a))
        })
        .collect()
}

fn tone(hz: f32, len: usize, from: usize) -> Vec<f32> {
    (0..len)
        .map(|i| if i < from { 0.0 } else { 0.3 * (2.0 * std::f32::consts::PI * hz * i as f32 / RATE).sin() })
        .collect()
}

fn goertzel(x: &[f32], hz: f32) -> f32 {
    let c = 2.0 * (2.0 * std::f32::consts::PI * hz / RATE).cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &v in x {
        let s = v + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - c * s1 * s2).max(0.0).sqrt() * 2.0 / x.len() as f32
}

fn power(x: &[f32]) -> f64 {
    x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len().max(1) as f64
}

fn db(p: f64) -> f64 {
    10.0 * p.max(1e-15).log10()
}

/// The room: returns (microphone, cleaned, µs per block).
fn room(c: &mut dyn Canceller, far: &[f32], near: &[f32], delay_ms: usize) -> (Vec<f32>, Vec<f32>, f64) {
    let d = delay_ms * 48;
    let n = far.len().min(near.len()) / N * N;
    let mic: Vec<f32> = (0..n).map(|i| near[i] + if i >= d { 0.5 * far[i - d] } else { 0.0 }).collect();
    let mut out = mic.clone();
    let started = Instant::now();
    for k in 0..n / N {
        c.render(&far[k * N..(k + 1) * N]);
        c.capture(&mut out[k * N..(k + 1) * N]);
    }
    (mic, out, started.elapsed().as_secs_f64() * 1e6 / (n / N) as f64)
}

fn main() {
    let len = 12 * 48_000;
    let (ann, bo) = (speech("ann", len), speech("bo", len));
    let silence = vec![0.0f32; len];
    let makers: [(&str, fn() -> Box<dyn Canceller>); 2] =
        [("sonora 0.2.0", || Box::new(Sonora::new())), ("aec3 0.4.0", || Box::new(Aec3::new()))];
    for (name, make) in makers {
        println!("== {name}");
        for delay in [40, 80, 150] {
            let (mic, out, us) = room(make().as_mut(), &ann, &silence, delay);
            let s = 2 * 48_000;
            let erle = db(power(&mic[s..])) - db(power(&out[s..]));
            let first = db(power(&mic[..48_000])) - db(power(&out[..48_000]));
            println!("  speech echo, {delay:>3} ms: ERLE first second {first:.1} dB, after 2 s {erle:.1} dB; {us:.0} µs per block");
        }
        // Tones: Ann 440 plays, Bo answers 660 from 1.5 s.
        let (t440, t660) = (tone(440.0, len, 0), tone(660.0, len, 72_000));
        let (mic, out, _) = room(make().as_mut(), &t440, &t660, 80);
        let (_, alone, _) = room(make().as_mut(), &silence, &t660, 80);
        let s = 3 * 48_000;
        let echo = 20.0 * (goertzel(&mic[s..], 440.0) / goertzel(&out[s..], 440.0).max(1e-9)).log10();
        let loss = 20.0 * (goertzel(&alone[s..], 660.0) / goertzel(&out[s..], 660.0).max(1e-9)).log10();
        println!("  tones, 80 ms: 440 echo down {echo:.1} dB; 660 in double talk loses {loss:.1} dB");
        // Speech double talk: Bo near, Ann far.
        let (_, out, _) = room(make().as_mut(), &ann, &bo, 80);
        let (_, alone, _) = room(make().as_mut(), &silence, &bo, 80);
        let s = 2 * 48_000;
        println!(
            "  speech double talk, 80 ms: near voice {:+.1} dB against alone",
            db(power(&out[s..])) - db(power(&alone[s..]))
        );
    }
}
