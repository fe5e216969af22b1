"""The GAN family: generators and discriminators for images and tile grids,
the seed's non-saturating loss plus hinge and WGAN-GP, the stabilisers of
"Improved Techniques for Training GANs", and generative metrics.

gan/ knows nothing of RL; only clm.hybrid joins it with the agents.
"""
