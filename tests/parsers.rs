//! Property tests over every reader of outside input: no panic, no hang, an error naming the field.
