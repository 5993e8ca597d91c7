"""Weight-free measurements on the face track: EAR, blinks, mouth aperture, motion, AV offset."""
