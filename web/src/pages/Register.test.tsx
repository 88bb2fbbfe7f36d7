import { screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { json, mockFetch, renderApp } from '../test/helpers';

describe('Register', () => {
  it('sends an already registered email to the login page with the address and the next page', async () => {
    mockFetch((method, url) => {
      if (method === 'POST' && url === '/api/auth/register') {
        return json(409, { title: 'Conflict', status: 409, detail: 'email already registered' });
      }
      return json(404, { title: 'Not found' });
    });
    renderApp('/register?next=%2Fshows%2F3');
    const user = userEvent.setup();
    await user.type(screen.getByLabelText('Email'), 'ann@example.com');
    await user.type(screen.getByLabelText('Password'), 'a long password');
    await user.click(screen.getByRole('button', { name: 'Create account' }));
    const notice = await screen.findByTestId('notice');
    expect(notice).toHaveTextContent(/^That email is already registered\. Log in instead$/);
    const link = screen.getByRole('link', { name: 'Log in instead' });
    expect(link).toHaveAttribute('href', '/login?email=ann%40example.com&next=%2Fshows%2F3');
    await user.click(link);
    expect(await screen.findByRole('heading', { name: 'Log in' })).toBeInTheDocument();
    expect(screen.getByLabelText('Email')).toHaveValue('ann@example.com');
  });
});
