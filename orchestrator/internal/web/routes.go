package web

// routes lists the whole hub HTTP surface; /user/ goes to the proxy in
// ServeHTTP before echo sees it.
func (s *Server) routes() {
	e := s.e
	e.Pre(s.requestID, s.recoverPanics, s.limitBodies)
	e.Use(s.accessLog, s.securityHeaders, s.identify)

	e.GET("/", s.root)
	e.GET("/hub", s.root)
	e.GET("/hub/", s.root)
	e.GET("/hub/health", s.health)
	e.GET("/hub/metrics", s.metrics)
	e.GET("/hub/static/*", s.static)

	// pages
	e.GET("/hub/login", s.loginPage)
	e.POST("/hub/login", s.loginSubmit)
	e.GET("/hub/logout", s.logout)
	e.POST("/hub/logout", s.logout)
	e.GET("/hub/home", s.homePage, s.requireLogin)
	e.GET("/hub/spawn-pending/:name", s.spawnPendingPage, s.requireLogin)
	e.GET("/hub/spawn/:name", s.spawnPendingPage, s.requireLogin)
	e.GET("/hub/admin", s.adminPage, s.requireLogin, s.requireAdmin)
	e.GET("/hub/admin/gitpuller", s.gitpullerPage, s.requireLogin, s.requireAdmin)
	e.GET("/hub/token", s.tokenPage, s.requireLogin)
	e.GET("/user-redirect/*", s.userRedirect)
	e.GET("/hub/user-redirect/*", s.userRedirect)

	// JSON API, JupyterHub-shaped paths
	api := e.Group("/hub/api", s.apiAuth, s.csrf, s.requireScopes)
	api.GET("", s.apiVersion)
	api.GET("/", s.apiVersion)
	api.GET("/info", s.apiVersion)
	api.GET("/user", s.apiMe)
	api.GET("/users", s.apiListUsers)
	api.POST("/users", s.apiAddUsers)
	api.GET("/users/:name", s.apiGetUser)
	api.PATCH("/users/:name", s.apiPatchUser)
	api.DELETE("/users/:name", s.apiDeleteUser)
	api.POST("/users/:name", s.apiAddOneUser)
	api.POST("/users/:name/server", s.apiStartServer)
	api.DELETE("/users/:name/server", s.apiStopServer)
	api.POST("/users/:name/activity", s.apiActivity)
	api.GET("/users/:name/server/progress", s.apiProgress)
	api.GET("/users/:name/tokens", s.apiListTokens)
	api.POST("/users/:name/tokens", s.apiCreateToken)
	api.GET("/users/:name/tokens/:id", s.apiGetToken)
	api.DELETE("/users/:name/tokens/:id", s.apiDeleteToken)
	api.GET("/groups", s.apiListGroups)
	api.GET("/groups/:name", s.apiGetGroup)
	api.POST("/groups/:name", s.apiCreateGroup)
	api.DELETE("/groups/:name", s.apiDeleteGroup)
	api.POST("/groups/:name/users", s.apiGroupMembers)
	api.DELETE("/groups/:name/users", s.apiGroupMembers)
	api.GET("/events", s.apiEvents)
	api.GET("/image", s.apiGetImage)
	api.PUT("/image", s.apiSetImage)
	api.POST("/image/restart-outdated", s.apiRestartOutdated)
	api.GET("/gitpuller-link", s.apiGitpullerLink)
	api.GET("/capacity", s.apiCapacity)
	api.GET("/line", s.apiLine)
	api.PUT("/line", s.apiSetLine)
	s.lifecycleRoutes(api)
	s.api = api
	s.oauthRoutes()
}
