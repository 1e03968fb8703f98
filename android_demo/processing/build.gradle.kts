// Plain Kotlin/JVM library: the SDK's pre/post-processing with no Android dependency.
// Its checks run outside Gradle too: ../test_processing.sh (kotlinc + java).
plugins {
    id("org.jetbrains.kotlin.jvm")
}

kotlin {
    jvmToolchain(17)
}

// The vector checks are a main() program (no test framework), run by test_processing.sh:
// `./gradlew :processing:runVectorTests -Pvectors=DIR` runs the same from Gradle.
sourceSets {
    create("vectors") {
        kotlin.srcDir("src/test/kotlin")
        compileClasspath += sourceSets["main"].output
        runtimeClasspath += sourceSets["main"].output
    }
}
dependencies {
    "vectorsImplementation"(kotlin("stdlib"))
}
tasks.register<JavaExec>("runVectorTests") {
    classpath = sourceSets["vectors"].runtimeClasspath
    mainClass.set("org.edgesam.processing.VectorTestsKt")
    args(project.findProperty("vectors")?.toString() ?: "build/vectors")
}
