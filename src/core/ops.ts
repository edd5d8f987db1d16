// Op ids and argument counts of the C dispatcher (native/core/xst.h).
// host-tests/ops.test.ts checks that the two agree.

export const Op = {
  FcForward: 1,
  FcBackwardInput: 2,
  FcBackwardBias: 3,
  FcBackwardWeight: 4,
  FcBackwardWeightSgd: 5,
  SgdS8Update: 6,
  SgdS32Update: 7,
  ActivationBackward: 8,
  SoftmaxXentBackward: 9,
  Conv2dForward: 10,
  Conv2dBackwardInput: 11,
  Conv2dBackwardBias: 12,
  Conv2dBackwardWeight: 13,
  DepthwiseConv2dForward: 14,
  DepthwiseConv2dBackwardInput: 15,
  DepthwiseConv2dBackwardBias: 16,
  DepthwiseConv2dBackwardWeight: 17,
} as const;
export type OpId = (typeof Op)[keyof typeof Op];

export const opNargs: Readonly<Record<OpId, number>> = {
  1: 14,
  2: 11,
  3: 7,
  4: 11,
  5: 15,
  6: 12,
  7: 9,
  8: 3,
  9: 7,
  10: 24,
  11: 21,
  12: 17,
  13: 21,
  14: 24,
  15: 21,
  16: 17,
  17: 19,
};

export const opName: Readonly<Record<OpId, string>> = {
  1: 'fully_connected_s8_forward',
  2: 'fully_connected_s8_backward_input',
  3: 'fully_connected_s8_backward_bias',
  4: 'fully_connected_s8_backward_weight',
  5: 'fully_connected_s8_backward_weight_sgd',
  6: 'sgd_s8_update',
  7: 'sgd_s32_update',
  8: 'activation_s8_backward',
  9: 'softmax_xent_s8_backward',
  10: 'conv2d_s8_forward',
  11: 'conv2d_s8_backward_input',
  12: 'conv2d_s8_backward_bias',
  13: 'conv2d_s8_backward_weight',
  14: 'depthwise_conv2d_s8_forward',
  15: 'depthwise_conv2d_s8_backward_input',
  16: 'depthwise_conv2d_s8_backward_bias',
  17: 'depthwise_conv2d_s8_backward_weight',
};

// Status codes of the C core, in order (xst_status).
export const statusNames = [
  'ok',
  'wrong number of arguments',
  'unknown op',
  'bad dimensions',
  'channel range out of bounds',
  'tensor outside the arena',
  'tensor misaligned',
  'quantisation parameter out of range',
  'output tensor overlaps another tensor',
  'output tensor in read-only memory',
];
