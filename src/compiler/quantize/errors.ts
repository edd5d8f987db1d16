// The one error type of post-training quantisation: a float graph it cannot
// quantise or calibration data that does not fit the model, with a message
// that says what to change.
export class QuantizeError extends Error {
  override name = 'QuantizeError';
}
