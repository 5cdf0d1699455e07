package vault

// TokenOf exposes the client's current Vault token to tests.
func TokenOf(c *Client) string { return c.api.Token() }
