/* A bundler-fingerprinted asset: its name carries its digest, so it may be cached for a year. */
window.sampleVendor = "5d41402a";
