//! The gradient accumulation of the vendored candle-core (vendor/README.md): a tensor's
//! first gradient is stored as it is, later ones are added, and a strided first gradient
//! is made contiguous, since the fused kernels' backward takes contiguous inputs.

use candle_core::{Device, Tensor, Var};

#[test]
fn gradients_of_a_tensor_used_several_times_add_up() {
    let x = Var::from_vec(vec![1f32, 2., 3., 4., 5., 6.], (2, 3), &Device::Cpu).unwrap();
    // d/dx of sum(2x + x + (xᵀ)ᵀ) = 4 everywhere; the transposes give a strided gradient.
    let y = ((x.as_tensor() * 2.0).unwrap() + x.as_tensor()).unwrap();
    let y = (y + x.as_tensor().t().unwrap().t().unwrap()).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    let g = grads.get(x.as_tensor()).unwrap();
    assert_eq!(g.to_vec2::<f32>().unwrap(), vec![vec![4f32; 3]; 2]);
}

#[test]
fn a_single_strided_gradient_is_stored_contiguous() {
    let x = Var::from_vec(vec![1f32, 2., 3., 4., 5., 6.], (2, 3), &Device::Cpu).unwrap();
    let w = Tensor::from_vec(vec![1f32, 10., 100.], (1, 3), &Device::Cpu).unwrap();
    // Only path to x: a transpose, whose backward hands x a transposed (strided) gradient.
    let y = x
        .as_tensor()
        .t()
        .unwrap()
        .broadcast_mul(&w.t().unwrap())
        .unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    let g = grads.get(x.as_tensor()).unwrap();
    assert!(g.is_contiguous());
    assert_eq!(
        g.to_vec2::<f32>().unwrap(),
        vec![vec![1f32, 10., 100.], vec![1., 10., 100.]]
    );
}
