import { act, render, screen } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Countdown, formatRemaining } from './Countdown';

describe('formatRemaining', () => {
  it('shows minutes and seconds, hours when there are some, never below zero', () => {
    expect(formatRemaining(600_000)).toBe('10:00');
    expect(formatRemaining(61_000)).toBe('1:01');
    expect(formatRemaining(999)).toBe('0:01');
    expect(formatRemaining(3_725_000)).toBe('1:02:05');
    expect(formatRemaining(-5000)).toBe('0:00');
  });
});

describe('Countdown', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2026-11-26T10:00:00Z'));
  });
  afterEach(() => vi.useRealTimers());

  it('counts down to expires_at, turns urgent in the last minute and calls onExpire once', () => {
    const onExpire = vi.fn();
    render(<Countdown until="2026-11-26T10:01:05Z" now={Date.now} onExpire={onExpire} label="Hold expires in" />);
    const timer = screen.getByRole('timer');
    expect(timer).toHaveTextContent('1:05');
    expect(timer).toHaveAccessibleName('Hold expires in: 1 minute 5 seconds');
    expect(timer).not.toHaveClass('is-urgent');

    act(() => vi.advanceTimersByTime(10_000));
    expect(timer).toHaveTextContent('0:55');
    expect(timer).toHaveClass('is-urgent');
    expect(onExpire).not.toHaveBeenCalled();

    act(() => vi.advanceTimersByTime(55_000));
    expect(timer).toHaveTextContent('0:00');
    expect(timer).toHaveClass('is-over');
    expect(onExpire).toHaveBeenCalledTimes(1);

    act(() => vi.advanceTimersByTime(5_000));
    expect(onExpire).toHaveBeenCalledTimes(1);
  });
});
