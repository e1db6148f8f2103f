print("envoy")
