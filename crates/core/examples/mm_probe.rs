use gemm::{gemm, Parallelism};
fn main() {
    for (m, k, n) in [
        (32usize, 384usize, 1536usize),
        (32, 1536, 384),
        (32, 384, 1152),
        (256, 384, 1536),
        (1024, 384, 1536),
    ] {
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 * 0.1).collect();
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 5) % 11) as f32 * 0.1).collect();
        let mut wt = vec![0f32; n * k];
        for a in 0..n {
            for b in 0..k {
                wt[b * n + a] = w[a * k + b];
            }
        }
        let mut y = vec![0f32; m * n];
        for par in [Parallelism::None, Parallelism::Rayon(2)] {
            for mode in 0..3 {
                let run = |y: &mut [f32]| unsafe {
                    match mode {
                        0 => gemm(
                            m,
                            n,
                            k,
                            y.as_mut_ptr(),
                            1,
                            n as isize,
                            false,
                            x.as_ptr(),
                            1,
                            k as isize,
                            w.as_ptr(),
                            k as isize,
                            1,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            par,
                        ),
                        1 => gemm(
                            m,
                            n,
                            k,
                            y.as_mut_ptr(),
                            1,
                            n as isize,
                            false,
                            x.as_ptr(),
                            1,
                            k as isize,
                            wt.as_ptr(),
                            1,
                            n as isize,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            par,
                        ),
                        _ => gemm(
                            n,
                            m,
                            k,
                            y.as_mut_ptr(),
                            n as isize,
                            1,
                            false,
                            w.as_ptr(),
                            1,
                            k as isize,
                            x.as_ptr(),
                            k as isize,
                            1,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            par,
                        ),
                    }
                };
                for _ in 0..5 {
                    run(&mut y);
                }
                let r = 200;
                let t = std::time::Instant::now();
                for _ in 0..r {
                    run(&mut y);
                }
                let dt = t.elapsed().as_secs_f64() / r as f64;
                println!(
                    "{m} {k} {n} {:?} mode{mode} {:.1} us {:.0} GFLOP/s",
                    matches!(par, Parallelism::None),
                    dt * 1e6,
                    2.0 * (m * k * n) as f64 / dt / 1e9
                );
            }
        }
    }
}
