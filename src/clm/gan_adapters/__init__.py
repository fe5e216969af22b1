"""What `clm gan train` needs from each kind of data (images, levels): the GAN CLI's adapters, above the domains and the GAN."""
