package catalog

// Compilations returns how many schemas the catalog has compiled.
func (c *Catalog) Compilations() int {
	c.schemas.mu.Lock()
	defer c.schemas.mu.Unlock()
	return c.schemas.compile
}
