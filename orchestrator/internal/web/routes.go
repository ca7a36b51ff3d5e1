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
	api := e.Group("/hub/api", s.apiAuth, s.csrf)
	api.GET("", s.apiVersion)
	api.GET("/", s.apiVersion)
	api.GET("/info", s.apiVersion)
	api.GET("/user", s.apiMe)
	api.GET("/users", s.apiListUsers, s.requireAdmin)
	api.POST("/users", s.apiAddUsers, s.requireAdmin)
	api.GET("/users/:name", s.apiGetUser, s.requireSelfOrAdmin)
	api.PATCH("/users/:name", s.apiPatchUser, s.requireAdmin)
	api.DELETE("/users/:name", s.apiDeleteUser, s.requireAdmin)
	api.POST("/users/:name", s.apiAddOneUser, s.requireAdmin)
	api.POST("/users/:name/server", s.apiStartServer, s.requireSelfOrAdmin)
	api.DELETE("/users/:name/server", s.apiStopServer, s.requireSelfOrAdmin)
	api.POST("/users/:name/activity", s.apiActivity, s.requireSelfOrAdmin)
	api.GET("/users/:name/server/progress", s.apiProgress, s.requireSelfOrAdmin)
	api.GET("/users/:name/tokens", s.apiListTokens, s.requireSelfOrAdmin)
	api.POST("/users/:name/tokens", s.apiCreateToken, s.requireSelfOrAdmin)
	api.GET("/users/:name/tokens/:id", s.apiGetToken, s.requireSelfOrAdmin)
	api.DELETE("/users/:name/tokens/:id", s.apiDeleteToken, s.requireSelfOrAdmin)
	api.GET("/groups", s.apiListGroups, s.requireAdmin)
	api.GET("/groups/:group", s.apiGetGroup, s.requireAdmin)
	api.POST("/groups/:group", s.apiCreateGroup, s.requireAdmin)
	api.DELETE("/groups/:group", s.apiDeleteGroup, s.requireAdmin)
	api.POST("/groups/:group/users", s.apiGroupMembers, s.requireAdmin)
	api.DELETE("/groups/:group/users", s.apiGroupMembers, s.requireAdmin)
	api.GET("/events", s.apiEvents, s.requireAdmin)
	api.GET("/image", s.apiGetImage, s.requireAdmin)
	api.PUT("/image", s.apiSetImage, s.requireAdmin)
	api.POST("/image/restart-outdated", s.apiRestartOutdated, s.requireAdmin)
	api.GET("/gitpuller-link", s.apiGitpullerLink, s.requireAdmin)
	s.lifecycleRoutes(api)
	s.api = api
}
