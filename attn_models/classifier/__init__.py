"""The Fashion-MNIST classifier behind the GAN metrics (FID features, class consistency)."""
