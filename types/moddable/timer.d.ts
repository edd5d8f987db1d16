// The SDK's timer module (modules/base/timer): callbacks on the main loop.
declare module 'timer' {
  export type TimerCallback = (timer: Timer) => void;

  class Timer {
    private constructor();
    // Once after `interval` ms (0: next turn of the loop), then every
    // `repeat` ms when given.
    static set(callback: TimerCallback, interval?: number, repeat?: number): Timer;
    // Every `interval` ms until cleared.
    static repeat(callback: TimerCallback, interval: number): Timer;
    static schedule(timer: Timer, interval?: number, repeat?: number): void;
    static clear(timer: Timer | undefined | null): void;
    static delay(milliseconds: number): void;
    private brand: boolean;
  }
  export { Timer as default };
}
