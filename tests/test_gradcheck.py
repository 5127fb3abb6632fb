"""lstm_ref.gradcheck: centred differences, the error formula, and no mutation."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_ref.gradcheck import gradcheck, numerical_gradient, relative_error

RTOL = 1e-8  # centred differences of smooth functions in float64


def test_numerical_gradient_of_known_function(rng):
    a, b = rng.standard_normal((3, 2)), rng.standard_normal(4)
    grads = numerical_gradient(lambda d: np.sum(np.sin(d["a"])) + np.sum(d["b"] ** 3), {"a": a, "b": b})
    np.testing.assert_allclose(grads["a"], np.cos(a), rtol=RTOL, err_msg="d sum(sin a) / da")
    np.testing.assert_allclose(grads["b"], 3 * b**2, rtol=RTOL, err_msg="d sum(b^3) / db")


def test_never_mutates_the_callers_arrays(rng):
    a = rng.standard_normal((2, 3))
    before = a.copy()
    seen = []

    def f(d):
        seen.append(d["a"] is a)
        return np.sum(d["a"] ** 2)

    gradcheck(f, {"a": a}, {"a": 2 * a})
    np.testing.assert_array_equal(a, before, err_msg="gradcheck changed the caller's array")
    assert not any(seen), "f was given the caller's array instead of a copy"

    def failing(d):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        numerical_gradient(failing, {"a": a})
    np.testing.assert_array_equal(a, before, err_msg="a failing f left the caller's array perturbed")


def test_detects_a_wrong_gradient_and_accepts_the_right_one(rng):
    a = rng.standard_normal(5)
    f = lambda d: np.sum(np.exp(d["a"]))  # noqa: E731
    assert gradcheck(f, {"a": a}, {"a": np.exp(a)})["a"] < 1e-8
    assert gradcheck(f, {"a": a}, {"a": np.exp(a) * 1.001})["a"] > 1e-4


def test_relative_error_is_safe_for_zeros():
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(np.array([0.0, 2.0]), np.array([1e-12, 2.0])) == pytest.approx(0.5e-12)
    assert relative_error(np.array([1.0, 0.0]), np.array([1.0, 0.5])) == pytest.approx(0.5)


def test_relative_error_refuses_arrays_of_different_shapes():
    """(3,) against (3, 1) would broadcast to a (3, 3) difference, 0 for these ones, and pass any check."""
    with pytest.raises(ValueError, match=r"analytic and numeric must have the same shape, got \(3,\) and \(3, 1\)"):
        relative_error(np.ones(3), np.ones((3, 1)))


def test_a_nan_or_infinite_gradient_fails_the_check(rng):
    """max() over the errors passes over a NaN that is not first: a non-finite gradient must give inf."""
    a = rng.standard_normal(3)
    f = lambda d: float(np.sum(d["a"] ** 2) + np.sum(d["b"] ** 2))  # noqa: E731
    for bad in (np.nan, np.inf):
        errors = gradcheck(f, {"a": a, "b": a.copy()}, {"a": 2 * a, "b": np.full(3, bad)})
        assert errors["a"] < 1e-8 and errors["b"] == np.inf
        assert not max(errors.values()) < 1e-7


def test_bad_arguments_are_rejected(rng):
    a = rng.standard_normal(2)
    with pytest.raises(TypeError, match="arrays"):
        numerical_gradient(lambda d: 0.0, {"a": [1.0, 2.0]})
    with pytest.raises(ValueError, match="finite scalar"):
        numerical_gradient(lambda d: d["a"], {"a": a})
    with pytest.raises(ValueError, match="keys"):
        gradcheck(lambda d: 0.0, {"a": a}, {"b": a})
    with pytest.raises(ValueError, match=r"analytic\['a'\] must have shape \(2,\)"):
        gradcheck(lambda d: 0.0, {"a": a}, {"a": np.zeros(3)})
    with pytest.raises(ValueError, match="eps"):
        numerical_gradient(lambda d: 0.0, {"a": a}, eps=0.0)
    with pytest.raises(ValueError, match=r"arrays\['a'\] is empty \(shape \(0,\)\)"):
        gradcheck(lambda d: 0.0, {"a": a[:0]}, {"a": a[:0]})


def test_float32_with_a_tiny_eps_is_warned_about(rng):
    a = rng.standard_normal(3).astype(np.float32)
    f = lambda d: float(np.sum(d["a"] ** 2))  # noqa: E731
    with pytest.warns(UserWarning, match="float32 arrays with eps=1e-06: the differences are mostly rounding"):
        numerical_gradient(f, {"a": a})
    assert gradcheck(f, {"a": a}, {"a": 2 * a}, eps=1e-2)["a"] < 1e-3  # a float32 check that works
