//! The domain-level property test of noise control: any interleaving of raises, resolves
//! and agent closes keeps every alert on its ticket and asks Datto to resolve each at most once.
