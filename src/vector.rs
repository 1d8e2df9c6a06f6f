//! Arithmetic on embedding vectors that both the encoder's tasks and the retrieval layouts
//! (`sentence`) use.

/// Scales a vector to unit L2 norm (as torch's F.normalize, eps 1e-12).
pub fn l2_normalize(v: &mut [f32]) {
    let n = v
        .iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt()
        .max(1e-12);
    v.iter_mut().for_each(|x| *x = (*x as f64 / n) as f32);
}

#[cfg(test)]
mod tests {
    #[test]
    fn unit_norm_and_zero_stays_zero() {
        let mut v = [3.0f32, 4.0];
        super::l2_normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-7 && (v[1] - 0.8).abs() < 1e-7);
        let mut z = [0.0f32; 3];
        super::l2_normalize(&mut z);
        assert_eq!(z, [0.0; 3]);
    }
}
