// The one error type the TFLite importer throws: whatever is wrong with a
// .tflite file (truncated, hostile, not int8, an unsupported op), the caller
// gets a TfliteImportError whose message says what to do.
export class TfliteImportError extends Error {
  override name = 'TfliteImportError';
}
