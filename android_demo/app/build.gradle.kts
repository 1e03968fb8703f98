plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "org.edgesam.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "org.edgesam.demo"
        minSdk = 26
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
    }
    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }
    androidResources {
        // .tflite files must stay uncompressed to be memory-mapped from the APK.
        noCompress += listOf("tflite")
    }
}

dependencies {
    implementation(project(":processing"))
    // LiteRT (formerly TensorFlow Lite): the Interpreter API, XNNPACK on the CPU by default.
    implementation("com.google.ai.edge.litert:litert:1.4.1")
    // Optional GPU delegate (the "GPU" switch in the app).
    implementation("com.google.ai.edge.litert:litert-gpu:1.4.1")
    implementation("androidx.appcompat:appcompat:1.7.0")
    implementation("androidx.activity:activity-ktx:1.9.3")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
}
