"""Test helpers shared across the test layers."""
